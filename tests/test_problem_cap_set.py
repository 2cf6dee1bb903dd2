"""The cap_set problem: the greedy construction, the trusted check, a run through the CLI.

    .venv/bin/pytest tests/test_problem_cap_set.py
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.problems.cap_set_check import cap_set_size
from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import Evaluation, FailureKind, SandboxPool
from conftest import evolve, evolve_json

# A priority that finds maximal cap sets for n <= 4. For n = 1, 2 the greedy
# order alone does ({0, 1}^n); for n = 3, 4 the vectors on a quadric
# Q(x) = x.A.x + b.x = 0 (mod 3) come first, ties broken by w.x. The forms
# were found by a random search over small integer A, b, w.
MAXIMAL = '''def priority(el: np.ndarray, n: int) -> float:
    forms = {
        3: ([[2, 1, 1], [0, 0, 0], [0, 0, 0]], [2, 1, 2], [0, 1, 3]),
        4: ([[0, 0, 1, 2], [2, 0, 1, 1], [2, 0, 2, 2], [2, 0, 0, 1]], [0, 0, 0, 0], [3, 1, 1, 3]),
    }
    if n not in forms:
        return 0.0
    a, b, w = (np.array(m) for m in forms[n])
    on_quadric = (el @ a @ el + b @ el) % 3 == 0
    return 10.0 * on_quadric + 0.1 * float(w @ el)
'''
MAXIMAL_SIZES = {"n1": 2.0, "n2": 4.0, "n3": 9.0, "n4": 20.0}


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(2) as p:
        yield p


@pytest.fixture
def small_dims(tmp_path: Path) -> Path:
    path = tmp_path / "dims.json"
    path.write_text(json.dumps({"train": {f"n{n}": n for n in range(1, 5)}}))
    return path


def test_a_suitable_priority_finds_maximal_cap_sets_and_the_check_confirms(pool: SandboxPool, small_dims: Path) -> None:
    spec = load_spec("cap_set", small_dims)
    [result] = evaluate_functions(spec, {"maximal": MAXIMAL}, "train", pool)
    assert result.evaluation.ok, result.evaluation.error
    assert dict(result.evaluation.scores) == MAXIMAL_SIZES  # the check's sizes, not only the claim


def test_seed_and_baseline_on_n8(pool: SandboxPool) -> None:
    spec = load_spec("cap_set")
    results = {r.name: r for r in evaluate_functions(spec, spec.baseline_functions(), "train", pool)}
    assert results["seed"].evaluation.scores == {"n8": 256.0}  # {0, 1}^8: the lexicographic greedy
    assert results["quadric"].evaluation.scores == {"n8": 294.0}


@pytest.mark.parametrize(("output", "reason"), [
    ([[0, 0, 0], [1, 1, 1], [2, 2, 2]], "lie on a line"),
    ([[0, 0, 0], [0, 1, 2], [0, 2, 1]], "lie on a line"),
    ([[0, 0, 0], [0, 0, 0]], "not distinct"),
    ([[0, 0, 3]], "0, 1 or 2"),
    ([[0, 0]], "length 3"),
])
def test_the_check_rejects_what_is_not_a_cap_set(output: list, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        cap_set_size(3, output)


def test_a_claimed_non_cap_set_is_invalid_output(small_dims: Path) -> None:
    spec = load_spec("cap_set", small_dims)
    claim = Evaluation(scores={"n3": 3.0}, outputs={"n3": [[0, 0, 0], [1, 1, 1], [2, 2, 2]]})
    verdict = spec.verify("train", claim)
    assert verdict.failure is FailureKind.INVALID_OUTPUT
    assert "lie on a line" in verdict.error
    honest = spec.verify("train", Evaluation(scores={"n2": 4.0}, outputs={"n2": [[0, 0], [0, 1], [1, 0], [1, 1]]}))
    assert honest.ok and honest.scores == {"n2": 4.0}


def test_a_priority_that_is_not_a_number_is_invalid_output(pool: SandboxPool, small_dims: Path) -> None:
    spec = load_spec("cap_set", small_dims)
    [result] = evaluate_functions(spec, {"bad": "def priority(el, n):\n    return el\n"}, "train", pool)
    assert result.evaluation.failure is FailureKind.INVALID_OUTPUT


def test_gp_run_through_the_cli(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "cap.db"
    proc = evolve("run", "cap_set", "--db", str(db), "--budget", "40", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    best = evolve_json("best", str(db), "--split", "test")
    assert best["score"] is not None and best["scores"]["n8"] >= 256
    assert best["metrics"]["best_known"]["n4"] == 20
