"""`--inputs` in the layouts researchers have: OR-Library text, FunSearch's bin-packing JSON, LLM-SR CSV directories.

    .venv/bin/pytest tests/test_byo_inputs.py

Every file here is written by the test in the published layout (not copied
from OR-Library, FunSearch or LLM-SR).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evolve.spec import SpecError, load_spec, read_inputs_file
from conftest import evolve

ORLIB = """ 2
 u4_00
 10 4 2
 2
 9
 1
 8
 u4_01
 10 3 2
 7
 3
 3
"""

# FunSearch's Weibull layout: {instance: {"capacity", "items"}}, no num_items.
WEIBULL = {"test_0": {"capacity": 10, "items": [2, 9, 1, 8]}, "test_1": {"capacity": 10, "items": [7, 3, 3]}}

# A FunSearch-style bin-packing spec (as the notebook's skeleton is written): it reads num_items.
SPEC = '''import numpy as np


@funsearch.run
def evaluate(instances: dict) -> float:
    used = []
    for name in instances:
        inst = instances[name]
        bins = np.array([inst["capacity"] for _ in range(inst["num_items"])])
        for item in inst["items"]:
            valid = np.nonzero((bins - item) >= 0)[0]
            bins[valid[np.argmax(priority(item, bins[valid]))]] -= item
        used.append((bins != inst["capacity"]).sum())
    return -np.mean(used)


@funsearch.evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    return -(bins - item)
'''


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "packing.py"
    path.write_text(SPEC)
    return path


def test_orlib_text_is_one_input_of_its_instances(tmp_path: Path) -> None:
    path = tmp_path / "binpack9.txt"
    path.write_text(ORLIB)
    splits = read_inputs_file(path)
    assert list(splits) == ["train"] and list(splits["train"]) == ["binpack9"]
    assert splits["train"]["binpack9"] == {
        "u4_00": {"capacity": 10, "num_items": 4, "items": [2, 9, 1, 8]},
        "u4_01": {"capacity": 10, "num_items": 3, "items": [7, 3, 3]},
    }


def test_weibull_json_gets_num_items_and_the_notebooks_datasets_layout_reads_too(tmp_path: Path) -> None:
    path = tmp_path / "weibull_tiny.json"
    path.write_text(json.dumps(WEIBULL))
    [(name, dataset)] = read_inputs_file(path)["train"].items()
    assert name == "weibull_tiny" and dataset["test_0"]["num_items"] == 4 and dataset["test_1"]["items"] == [7, 3, 3]
    both = tmp_path / "datasets.json"
    both.write_text(json.dumps({"OR-like": WEIBULL, "Weibull": WEIBULL}))
    assert list(read_inputs_file(both)["train"]) == ["OR-like", "Weibull"]


@pytest.mark.parametrize(("fmt", "inputs"), [("orlib", ORLIB), ("weibull", json.dumps(WEIBULL))], ids=["orlib", "weibull"])
def test_eval_on_each_published_layout_gives_best_fit(spec_file: Path, tmp_path: Path, fmt: str, inputs: str) -> None:
    path = tmp_path / f"{fmt}.{'txt' if fmt == 'orlib' else 'json'}"
    path.write_text(inputs)
    candidate = tmp_path / "best_fit.py"
    candidate.write_text("def priority(item, bins):\n    return -(bins - item)\n")
    proc = evolve("eval", str(spec_file), str(candidate), "--inputs", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scores"] == {fmt: -2.0}  # {2, 8}, {9, 1} and {7, 3}, {3}


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("bad.txt", ORLIB.replace(" 9\n", " nine\n"), "input 'bad' (OR-Library bin packing): instance 'u4_00' (line 5): item 2 of 4 'nine' is not a number"),
    ("bad.txt", ORLIB.replace(" 10 3 2", " 10 5 2"), "instance 'u4_01': the file ends where its item 4 of 5 should be"),
    ("bad.txt", " 3" + ORLIB[2:], "the header says 3 instances, the file holds 2"),
    ("bad.txt", ORLIB.replace(" 9\n", " 19\n"), "instance 'u4_00': item 19 does not fit a bin of capacity 10"),
    ("bad.json", json.dumps({**WEIBULL, "test_2": {"items": [1]}}), "input 'bad': instance 'test_2' needs 'capacity' and 'items'"),
    ("bad.json", json.dumps({"test_0": {"capacity": 10, "num_items": 5, "items": [1, 2]}}),
     "instance 'test_0': num_items is 5 but it has 2 items"),
    ("bad.json", json.dumps({"OR": WEIBULL, "extra": 3}), "input 'extra' is not a set of bin-packing instances"),
    ("bad.json", "{\"a\": ", "not valid JSON"),
], ids=["orlib-item", "orlib-short", "orlib-count", "orlib-too-big", "json-no-capacity", "json-num-items",
        "json-mixed", "json-syntax"])
def test_a_malformed_input_names_the_file_and_the_input(spec_file: Path, tmp_path: Path, name: str, text: str,
                                                       fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError, match=r"^" + str(path).replace(".", r"\.")) as caught:
        load_spec(spec_file, path)
    assert fragment in str(caught.value)
    proc = evolve("baseline", str(spec_file), "--inputs", str(path), "--split", "train")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr, proc.stderr


# -- LLM-SR CSV directories -------------------------------------------------------

LLMSR_SPEC = '''import numpy as np

MAX_NPARAMS = 3


@evaluate.run
def evaluate(data: dict) -> float:
    inputs, outputs = data["inputs"], data["outputs"]
    x = inputs[:, 0]
    design = np.stack([equation(x, np.eye(MAX_NPARAMS)[k]) for k in range(MAX_NPARAMS)], axis=1)  # linear in params
    params = np.linalg.lstsq(design, outputs, rcond=None)[0]
    return -float(np.mean((equation(x, params) - outputs) ** 2))


@equation.evolve
def equation(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    return params[0] * x + params[1]
'''


def llmsr_dir(root: Path, splits: tuple[str, ...] = ("train", "test_id", "test_ood")) -> Path:
    """Write `<split>.csv` files as LLM-SR ships them: a header row, the target last (here y = x^2 + noise)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for k, split in enumerate(splits):
        x = rng.uniform(k, k + 1, size=40)
        rows = np.column_stack([x, x**2 + 0.01 * rng.standard_normal(40)])
        np.savetxt(root / f"{split}.csv", rows, delimiter=",", header="x,y", comments="")
    return root


def test_llmsr_splits_are_what_the_directory_has_and_test_is_both_held_out_ones(tmp_path: Path) -> None:
    spec_path = tmp_path / "specification_square_numpy.txt"
    spec_path.write_text(LLMSR_SPEC)
    spec = load_spec(spec_path, llmsr_dir(tmp_path / "square"))
    assert spec.splits() == ["train", "test", "test_id", "test_ood"]
    assert list(spec.inputs("test")) == ["test_id", "test_ood"] and list(spec.inputs("test_ood")) == ["data"]
    proc = evolve("baseline", str(spec_path), "--inputs", str(tmp_path / "square"), "--json")  # default split: test
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)["baselines"]["seed"]["scores"]
    assert list(scores) == ["test_id", "test_ood"] and all(-1.0 < s < 0 for s in scores.values())
    wrong = evolve("eval", str(spec_path), str(spec_path), "--inputs", str(tmp_path / "square"), "--split", "valid")
    assert wrong.returncode == 2
    assert "no 'valid' split of inputs; the splits are: train, test, test_id, test_ood; pass --split with one of them" in wrong.stderr


def test_a_missing_default_split_lists_the_splits_there_are(spec_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "or.txt"
    path.write_text(ORLIB)
    proc = evolve("baseline", str(spec_file), "--inputs", str(path))
    assert proc.returncode == 2
    assert "no 'test' split of inputs; the splits are: train; pass --split train" in proc.stderr, proc.stderr
    no_train = llmsr_dir(tmp_path / "held_out_only", ("test_id",))
    with pytest.raises(SpecError, match=r"no train\.csv or train\.csv\.gz \(found: test_id\.csv\)"):
        read_inputs_file(no_train)


def test_the_runs_closing_hint_and_counts_add_up(spec_file: Path, tmp_path: Path, small_config: Path) -> None:
    path = tmp_path / "or.txt"
    path.write_text(ORLIB)
    db = tmp_path / "run.db"
    proc = evolve("run", str(spec_file), "--inputs", str(path), "--db", str(db), "--budget", "16", "--workers", "1",
                  "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    assert "no held-out split to test on" in proc.stdout and "--split test" not in proc.stdout, proc.stdout
    status = json.loads(evolve("status", str(db), "--json").stdout)
    # samples = candidates run (the seed is evaluated too, but is no sample) + duplicates + rejected
    assert status["samples"] == status["evaluated"] - 1 + status["duplicates"] + sum(status["rejected"].values())
    line = f"{status['samples']} samples ({status['evaluated'] - 1} evaluated, {status['duplicates']} duplicates, " \
           f"{sum(status['rejected'].values())} rejected); {status['valid']}/{status['evaluated']} programs valid, the seed included"
    assert line in " ".join(proc.stdout.split()), proc.stdout
    assert line.replace(" samples", f"/{status['budget']} samples", 1) in " ".join(evolve("status", str(db)).stdout.split())
