"""The LLM-SR equation problems and LLM-SR's own spec format.

    .venv/bin/pytest tests/test_problem_equations.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, evolve, evolve_json

from evolve.problems import llmsr_data
from evolve.proposers.gp import GPProposer
from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import SandboxPool

Columns = Callable[[np.ndarray], list[np.ndarray]]
# problem: (the seed's design matrix, its train score as documented in the README)
SEEDS: dict[str, tuple[Columns, float]] = {
    "oscillator1": (lambda X: [X[:, 0], X[:, 1], np.ones(len(X))], -4.1851e-4),
    "oscillator2": (lambda X: [X[:, 0], X[:, 1], X[:, 2], np.ones(len(X))], -3.1912e-2),
    "bactgrow": (lambda X: [X[:, 0], X[:, 1], X[:, 2], X[:, 3], np.ones(len(X))], -1.6719e-2),
    "stressstrain": (lambda X: [X[:, 0], X[:, 1]], -1.9053e-1),
}
LLMSR_DATA = Path(llmsr_data.data_dir("oscillator1"))


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(2) as p:
        yield p


def least_squares_mse(columns: Columns, X: np.ndarray, y: np.ndarray) -> float:
    design = np.stack(columns(X), axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.mean((design @ coef - y) ** 2))


@pytest.mark.parametrize("problem", sorted(SEEDS))
def test_the_trivial_initial_program_scores_as_documented(pool: SandboxPool, problem: str) -> None:
    spec = load_spec(problem)
    columns, documented = SEEDS[problem]
    [train, test] = [evaluate_functions(spec, {"seed": spec.function}, split, pool)[0] for split in ("train", "test")]
    assert train.evaluation.ok and test.evaluation.ok, (train.evaluation.error, test.evaluation.error)
    # The seed is linear in its constants, so BFGS must reach the least-squares optimum.
    _, X, y = llmsr_data.table(problem, "train")
    assert -train.evaluation.scores["train"] == pytest.approx(least_squares_mse(columns, X, y), rel=1e-4)
    assert train.evaluation.scores["train"] == pytest.approx(documented, rel=1e-3)
    # `test` holds both held-out splits, scored with the constants fitted on train.
    assert list(test.evaluation.scores) == ["test_id", "test_ood"]
    for name in ("test_id", "test_ood"):
        design = np.stack(columns(X), axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        _, X_test, y_test = llmsr_data.table(problem, name)
        mse = float(np.mean((np.stack(columns(X_test), axis=1) @ coef - y_test) ** 2))
        assert -test.evaluation.scores[name] == pytest.approx(mse, rel=1e-3)
        assert test.metrics["nmse"][name] == pytest.approx(mse / np.var(y_test), rel=1e-3)


def test_split_names() -> None:
    spec = load_spec("stressstrain")
    assert list(spec.inputs("test_id")) == ["test_id"]
    assert list(spec.inputs("test_ood")) == ["test_ood"]
    assert not spec.has_split("validation")


def test_llmsr_spec_file_loads_unchanged_and_runs(pool: SandboxPool) -> None:
    """A spec in LLM-SR's structure (@evaluate.run / @equation.evolve, no inputs of its own)."""
    spec = load_spec(DATA / "llmsr_oscillator1.py", LLMSR_DATA)
    assert (spec.entry, spec.function_name) == ("evaluate", "equation")
    assert set(llmsr_data.SPLITS) <= {s for s in ("train", "test_id", "test_ood") if spec.has_split(s)}
    [result] = evaluate_functions(spec, {"seed": spec.function}, "train", pool)
    _, X, y = llmsr_data.table("oscillator1", "train")
    expected = least_squares_mse(SEEDS["oscillator1"][0], X, y)
    assert -result.evaluation.scores["data"] == pytest.approx(expected, rel=1e-4)
    # The GP default reads the types from the annotations; params[i] are its constants.
    proposer = GPProposer(None, spec.function, np.random.default_rng(0))
    assert proposer.signature is not None and len(proposer.signature.terminals) == 10


def test_llmsr_spec_file_through_the_cli(tmp_path: Path, small_config: Path) -> None:
    spec = str(DATA / "llmsr_oscillator1.py")
    baseline = evolve_json("baseline", spec, "--inputs", str(LLMSR_DATA), "--split", "test_id")
    assert baseline["split"] == "test_id" and baseline["baselines"]["seed"]["score"] < 0
    db = tmp_path / "llmsr.db"
    proc = evolve("run", spec, "--inputs", str(LLMSR_DATA / "train.csv.gz"), "--db", str(db), "--budget", "16",
                  "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    assert evolve_json("status", str(db))["valid"] > 0


def test_gp_run_on_a_builtin_equation_problem(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "stress.db"
    proc = evolve("run", "stressstrain", "--db", str(db), "--budget", "24", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    best = evolve_json("best", str(db), "--split", "test")
    assert set(best["metrics"]["nmse"]) == {"test_id", "test_ood"}
    assert best["programs"][0]["train_score"] >= SEEDS["stressstrain"][1] * (1 + 1e-3)  # never worse than the seed
