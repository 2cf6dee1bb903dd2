"""Trusted re-checking: a sandbox result is a claim until the spec's check confirms it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import FailureKind, SandboxPool

SPEC = '''
import evolve

INPUTS = {"train": {"n4": 4, "n6": 6}}


@evolve.run
def evaluate(n):
    chosen = pick(n)
    return {"score": len(chosen), "output": chosen}


@evolve.evolve
def pick(n):
    return list(range(0, n, 2))


@evolve.check
def distinct_in_range(n, output):
    """Believe the size of the set only if it is a set of distinct numbers in [0, n)."""
    if len(set(output)) != len(output) or not all(0 <= x < n for x in output):
        raise ValueError("not distinct numbers in range")
    return len(output)
'''

CASES = {
    "honest": ("def pick(n):\n    return list(range(n))\n", None, {"n4": 4.0, "n6": 6.0}),
    "rejected": ("def pick(n):\n    return [0] * 10\n", FailureKind.INVALID_OUTPUT, None),
    # A candidate that reaches into its caller's frame to claim a score its output does not earn.
    "forged": (
        "def pick(n):\n    import sys\n    f = sys._getframe(1)\n    f.f_globals['len'] = lambda x: 1000\n    return [0]\n",
        FailureKind.FORBIDDEN,
        None,
    ),
    "numpy-output": ("def pick(n):\n    import numpy as np\n    return np.arange(n)\n", None, {"n4": 4.0, "n6": 6.0}),
}


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    with SandboxPool(2) as p:
        yield p


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_decides_what_is_believed(tmp_path: Path, pool: SandboxPool, case: str) -> None:
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(SPEC))
    spec = load_spec(path)
    source, failure, scores = CASES[case]
    [result] = evaluate_functions(spec, {case: source}, "train", pool)
    assert result.evaluation.failure == failure, result.evaluation.error
    if scores is not None:
        assert dict(result.evaluation.scores) == scores
    else:
        assert result.evaluation.error


def test_a_spec_with_a_check_needs_outputs(tmp_path: Path, pool: SandboxPool) -> None:
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(SPEC).replace('return {"score": len(chosen), "output": chosen}', "return len(chosen)"))
    [result] = evaluate_functions(load_spec(path), {"x": "def pick(n):\n    return [1]\n"}, "train", pool)
    assert result.evaluation.failure is FailureKind.INVALID_OUTPUT
    assert "no output to check" in result.evaluation.error
