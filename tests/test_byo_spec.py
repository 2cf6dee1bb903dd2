"""Specs as researchers have them: FunSearch's cap-set `el` tuple, LLM-SR's torch specs, duplicates, `--config`.

    .venv/bin/pytest tests/test_byo_spec.py

The torch spec and its numpy twin are written for this test in LLM-SR's
layout (`specification_<problem>_torch.txt`: module-level parameters,
`@evaluate.run` fitting them, `@equation.evolve`), fitting by least squares
so that both reach the same optimum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evolve.proposers.base import Prompt
from evolve.proposers.gp import GPProposer
from evolve.session import evaluate_functions
from evolve.spec import SpecError, load_spec
from sandbox import SandboxPool
from conftest import evolve

# In FunSearch's style: tuple methods and indexing on `el`, and numpy on np.array(el).
TUPLE_PRIORITY = '''def priority(el: tuple[int, ...], n: int) -> float:
  score = float(el.count(0))
  if el[0] == el[-1]:
    score *= 1.5
  v = np.array(el, dtype=np.float32)
  return score + (v @ v) % 3
'''


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(2) as p:
        yield p


@pytest.fixture
def dims(tmp_path: Path) -> Path:
    path = tmp_path / "dims.json"
    path.write_text(json.dumps({"n3": 3, "n4": 4}))
    return path


def test_cap_set_passes_el_as_a_tuple_as_funsearch_does(pool: SandboxPool, dims: Path) -> None:
    spec = load_spec("cap_set", dims)
    results = {r.name: r.evaluation for r in evaluate_functions(
        spec, {"tuple": TUPLE_PRIORITY, **spec.baseline_functions()}, "train", pool)}
    assert all(ev.ok for ev in results.values()), {k: ev.error for k, ev in results.items()}
    assert results["seed"].scores == {"n3": 8.0, "n4": 16.0}  # {0, 1}^n
    assert all(s > 0 for s in results["tuple"].scores.values())
    flat = "def priority(el, n):\n  return float(sum(x * x for x in el) % 3 == 1)\n"  # quadric, written on the tuple
    [same] = evaluate_functions(spec, {"flat": flat}, "train", pool)
    assert same.evaluation.scores == results["quadric"].scores


def test_the_gp_proposer_writes_valid_cap_set_programs_on_the_tuple(pool: SandboxPool, dims: Path) -> None:
    spec = load_spec("cap_set", dims)
    proposer = GPProposer(spec.gp_primitives, spec.function, np.random.default_rng(3))
    [children] = proposer.write([Prompt(0, (0,), (spec.function,), (0.0,), "priority")], 24)
    assert any("np.array(el)" in c for c in children), children
    results = evaluate_functions(spec, {str(i): c for i, c in enumerate(children)}, "train", pool)
    # A GP expression may divide by zero (nan: invalid-output); none may fail on the tuple itself (an error).
    errors = [r.evaluation.error for r in results if r.evaluation.failure is not None and r.evaluation.failure.value == "error"]
    assert not errors, errors
    assert sum(r.evaluation.ok for r in results) >= len(results) // 2


SPEC_TORCH = '''"""Find y(x) from data (an LLM-SR-style torch spec)."""

import torch

MAX_NPARAMS = 3
PRAMS_INIT = [torch.nn.Parameter(torch.tensor(1.0)) for _ in range(MAX_NPARAMS)]


@evaluate.run
def evaluate(data: dict) -> float:
    inputs, outputs = data['inputs'], data['outputs']
    x = inputs[:, 0]
    # The equation is linear in its parameters: fit them by least squares through autograd's Jacobian. The
    # design is rank-deficient when the equation uses fewer than MAX_NPARAMS parameters: lstsq's CPU default
    # (gelsy) then returns a different fit from run to run (torch 2.13), the SVD driver does not.
    params = torch.zeros(MAX_NPARAMS, dtype=torch.float64)
    design = torch.autograd.functional.jacobian(lambda p: equation(x.double(), p), params)
    fitted = torch.linalg.lstsq(design, outputs.double().unsqueeze(1), driver="gelsd").solution.squeeze(1)
    loss = torch.mean((equation(x.double(), fitted) - outputs.double()) ** 2)
    return -loss.item()


@equation.evolve
def equation(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    return params[0] * x + params[1]
'''

SPEC_NUMPY = '''"""Find y(x) from data (the numpy twin)."""

import numpy as np

MAX_NPARAMS = 3


@evaluate.run
def evaluate(data: dict) -> float:
    inputs, outputs = data['inputs'], data['outputs']
    x = inputs[:, 0].astype(np.float32).astype(np.float64)  # the same float32 data LLM-SR hands a torch spec
    y = outputs.astype(np.float32).astype(np.float64)
    design = np.stack([equation(x, np.eye(MAX_NPARAMS)[k]) for k in range(MAX_NPARAMS)], axis=1)
    fitted = np.linalg.lstsq(design, y, rcond=None)[0]
    return -float(np.mean((equation(x, fitted) - y) ** 2))


@equation.evolve
def equation(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    return params[0] * x + params[1]
'''


def test_an_llmsr_torch_spec_runs_unchanged_with_its_numpy_twins_mse(tmp_path: Path, pool: SandboxPool) -> None:
    data = tmp_path / "square"
    data.mkdir()
    rng = np.random.default_rng(1)
    for split in ("train", "test_id", "test_ood"):
        x = rng.uniform(0, 2, size=200)
        np.savetxt(data / f"{split}.csv", np.column_stack([x, x**2 + 0.05 * rng.standard_normal(200)]),
                   delimiter=",", header="x,y", comments="")
    (tmp_path / "specification_square_torch.txt").write_text(SPEC_TORCH)
    (tmp_path / "specification_square_numpy.txt").write_text(SPEC_NUMPY)
    torch_spec = load_spec(tmp_path / "specification_square_torch.txt", data)
    numpy_spec = load_spec(tmp_path / "specification_square_numpy.txt", data)
    assert type(torch_spec.inputs("train")["data"]["inputs"]).__name__ == "Tensor"  # as LLM-SR hands them over
    quadratic = {"quadratic": "def equation(x, params):\n    return params[0] * x * x + params[1] * x + params[2]\n"}
    for functions in ({"seed": torch_spec.function}, quadratic):
        [t] = evaluate_functions(torch_spec, functions, "test", pool)
        [n] = evaluate_functions(numpy_spec, functions if "seed" not in functions else {"seed": numpy_spec.function},
                                 "test", pool)
        assert t.evaluation.ok and n.evaluation.ok, (t.evaluation.error, n.evaluation.error)
        assert list(t.evaluation.scores) == ["test_id", "test_ood"]
        for split, score in n.evaluation.scores.items():
            assert t.evaluation.scores[split] == pytest.approx(score, rel=1e-6)
    assert -t.evaluation.score < 0.01 < -evaluate_functions(torch_spec, {"s": torch_spec.function}, "test", pool)[0].evaluation.score


def test_a_twice_defined_evolved_function_is_refused_before_the_spec_runs(tmp_path: Path) -> None:
    path = tmp_path / "twice.py"
    path.write_text("@evolve.run\ndef evaluate(n):\n    return priority(n)\n\n\n@evolve.evolve\ndef priority(n):\n"
                    "    return 1.0\n\n\nINPUTS = {'a': 1}\nopen(__file__ + '.ran', 'w')\n\n\ndef priority(n):\n"
                    "    return 2.0\n")
    with pytest.raises(SpecError, match=r"`priority` is defined 2 times \(lines 7 and 15\)"):
        load_spec(path)
    assert not (tmp_path / "twice.py.ran").exists()  # refused before its top-level code ran


def test_eval_refuses_a_file_without_the_evolved_function_naming_what_it_found(tmp_path: Path) -> None:
    candidate = tmp_path / "cap512.py"
    candidate.write_text(TUPLE_PRIORITY)
    proc = evolve("eval", "oscillator1", str(candidate))
    assert proc.returncode == 2
    assert "cap512.py: defines no function `equation` (found: priority)" in proc.stderr, proc.stderr


def test_eval_and_baseline_take_the_sandbox_settings_of_config(tmp_path: Path, dims: Path) -> None:
    config = tmp_path / "tight.toml"
    config.write_text("[sandbox]\ntimeout_s = 0.5\nworkers = 1\n")
    slow = tmp_path / "slow.py"
    slow.write_text("def priority(el, n):\n    import time\n    time.sleep(0.01)\n    return 0.0\n")
    proc = evolve("eval", "cap_set", str(slow), "--inputs", str(dims), "--config", str(config), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["failure"] == "timeout", proc.stdout + proc.stderr
    longer = evolve("eval", "cap_set", str(slow), "--inputs", str(dims), "--config", str(config), "--timeout", "30")
    assert longer.returncode == 0, longer.stderr  # --timeout wins over the file's timeout_s
    base = evolve("baseline", "cap_set", "--split", "train", "--inputs", str(dims), "--config", str(config), "--json")
    assert base.returncode == 0 and set(json.loads(base.stdout)["baselines"]) == {"seed", "quadric"}, base.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[sandbox]\nmemory_mb = 1\n")
    refused = evolve("baseline", "cap_set", "--config", str(bad))
    assert refused.returncode == 2 and "memory_mb" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
