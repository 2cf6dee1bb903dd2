"""Spec loading: roles, FunSearch format, inputs and the errors a user sees."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import pytest

from evolve.spec import SpecError, load_spec
from sandbox import Evaluation, FailureKind

DATA = Path(__file__).parent / "data"

GOOD = """\
import numpy as np
import evolve

INPUTS = {"train": {"a": 1, "b": 2}, "test": {"c": 3}}


@evolve.run
def evaluate(x) -> float:
    return float(f(x))


@evolve.evolve
def f(x):
    return x * 2


@evolve.baseline
def g(x):
    return x
"""


def write(tmp_path: Path, text: str, name: str = "spec.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_roles_inputs_and_program(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert (spec.entry, spec.function_name, spec.baselines) == ("evaluate", "f", ("g",))
    assert spec.inputs("train") == {"a": 1, "b": 2} and spec.inputs("test") == {"c": 3}
    program = spec.program("def f(x):\n    return x + 100\n")
    ns: dict = {}
    exec(program, ns)  # the test itself runs the (trusted) program to check the splice
    assert ns["evaluate"](1) == 101.0
    # Marker decorators and `import evolve` are commented out, line numbers kept.
    assert "# @evolve.run" in spec.program_source and "pass  # import evolve" in spec.program_source
    assert len(spec.program_source.splitlines()) == len(GOOD.splitlines())
    assert set(spec.baseline_functions()) == {"seed", "g"}
    assert spec.baseline_functions()["g"].startswith("def f(x):")


def test_funsearch_spec_loads_unchanged() -> None:
    spec = load_spec(DATA / "funsearch_bin_packing.py", DATA / "funsearch_inputs.json")
    assert (spec.entry, spec.function_name) == ("evaluate", "priority")
    assert spec.function.startswith("def priority(item: float, bins: np.ndarray)")
    assert "return priorities" in spec.function
    assert set(spec.inputs("train")) == {"train_0", "train_1"}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("import evolve\nINPUTS={'a': 1}\n@evolve.run\ndef e(x):\n    return 1.0\n", None, "no function is marked @evolve.evolve"),
        (
            "import evolve\nINPUTS={'a': 1}\n@evolve.run\ndef e(x):\n    return 1.0\n@evolve.evolve\ndef f(x):\n    return 1\n"
            "@evolve.evolve\ndef g(x):\n    return 2\n",
            10,
            "2 functions are marked @evolve.evolve",
        ),
        ("import evolve\n@evolve.run\ndef e(x):\n    return 1.0\n@evolve.evolve\ndef f(x)\n    return 1\n", 6, "syntax error"),
        ("import evolve\n@evolve.run\ndef e(x):\n    return 1.0\n@evolve.evolve\ndef f(x):\n    return 1\n", 3, "no inputs"),
        (
            "import evolve\nINPUTS = {'a': 1}\nraise RuntimeError('boom')\n@evolve.run\ndef e(x):\n    return 1.0\n"
            "@evolve.evolve\ndef f(x):\n    return 1\n",
            3,
            "running the spec failed: RuntimeError: boom",
        ),
    ],
    ids=["no-evolve", "two-evolve", "syntax", "no-inputs", "raises"],
)
def test_bad_specs_name_file_line_and_fix(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:")
    assert info.value.line == line


def test_inputs_file_errors_and_flat_mapping(tmp_path: Path) -> None:
    spec_path = write(tmp_path, "import evolve\n@evolve.run\ndef e(x):\n    return float(f(x))\n@evolve.evolve\ndef f(x):\n    return x\n")
    flat = tmp_path / "in.json"
    flat.write_text(json.dumps({"one": 1, "two": 2}))
    spec = load_spec(spec_path, flat)
    assert spec.inputs("train") == {"one": 1, "two": 2}
    with pytest.raises(SpecError, match="no 'test' split"):
        spec.inputs("test")
    bad = tmp_path / "bad.json"
    bad.write_text('{"one": 1,\n "two": }')
    with pytest.raises(SpecError, match=r"bad.json:2: not valid JSON"):
        load_spec(spec_path, bad)


def test_unknown_target_lists_builtins() -> None:
    with pytest.raises(SpecError, match="bin_packing_or"):
        load_spec("no_such_problem")


def test_builtin_splits_are_disjoint() -> None:
    spec = load_spec("bin_packing_or")
    train, test = spec.inputs("train"), spec.inputs("test")
    assert list(test) == ["OR1", "OR2", "OR3", "OR4"] and all(len(d) == 20 for d in test.values())
    train_items = {tuple(i["items"]) for d in train.values() for i in d.values()}
    test_items = {tuple(i["items"]) for d in test.values() for i in d.values()}
    assert not train_items & test_items
    assert all(20 <= x <= 100 for items in train_items for x in items)
    assert all(i["capacity"] == 150 and i["num_items"] == 120 for d in train.values() for i in d.values())
    weibull = load_spec("bin_packing_weibull")
    assert list(weibull.inputs("test")) == ["Weibull 5k"]
    assert all(1 <= x <= 100 for d in weibull.inputs("train").values() for i in d.values() for x in i["items"])
    assert weibull.splits() == ["train", "test", "valid"]
    (valid,) = weibull.inputs("valid").values()  # the test set's shape, drawn apart from train and test
    assert len(valid) == 5 and all(i["num_items"] == len(i["items"]) == 5000 and i["capacity"] == 100 for i in valid.values())
    seen = [{tuple(i["items"]) for d in weibull.inputs(s).values() for i in d.values()} for s in ("train", "valid", "test")]
    assert all(not a & b for a, b in itertools.combinations(seen, 2)) and len(seen[1]) == 5


def test_locate_places_a_failure_in_the_function_or_in_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.py"
    path.write_text(
        "import evolve\n\nINPUTS = {'train': {'a': 1}}\n\n\n@evolve.evolve\ndef f(x):\n    return x\n\n\n"
        "@evolve.run\ndef main(x):\n    return f(x) + check(x)\n\n\ndef check(x):\n    raise ValueError('spec')\n"
    )
    spec = load_spec(path)
    start = spec.function_span[0]
    body = "def f(x):\n    y = 1\n    return y / 0\n"  # one line longer than the seed

    def failed(line: int) -> Evaluation:
        return Evaluation(failure=FailureKind.ERROR, error=f"Boom (line {line})", line=line)

    assert spec.locate(failed(start + 2), body).error == "Boom (line 3 of f)"
    assert spec.locate(failed(start + 2), body, first_line=40).error == "Boom (line 42)"
    # Past the function the spec's own numbering resumes, shifted back by the extra line.
    assert spec.locate(failed(start + 3 + 9), body).error == f"Boom (line {start + 2 + 9} of spec.py)"
    assert spec.locate(failed(3), body).error == "Boom (line 3 of spec.py)"
    assert spec.locate(Evaluation(failure=FailureKind.ERROR, error="no line"), body).error == "no line"

