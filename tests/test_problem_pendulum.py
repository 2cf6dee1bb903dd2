"""The pendulum problem: data from solve_ivp, scoring by integrating the evolved equation.

    .venv/bin/pytest tests/test_problem_pendulum.py
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import evolve, evolve_json

from evolve.problems import pendulum_data
from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import FailureKind, SandboxPool

TRUTH = '''def acceleration(t, theta, omega, params):
    return -params[0] * np.sin(theta) - params[1] * omega + params[2] * np.cos(DRIVE_FREQUENCY * t)
'''
# Right in the small-angle and unforced limits only.
WRONG = {
    "linear": "def acceleration(t, theta, omega, params):\n    return -params[0] * theta - params[1] * omega\n",
    "undriven": "def acceleration(t, theta, omega, params):\n    return -params[0] * np.sin(theta) - params[1] * omega\n",
}


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(2) as p:
        yield p


def test_the_data_are_deterministic_and_as_stated() -> None:
    a = pendulum_data.trajectories.__wrapped__("test_ood")
    b = pendulum_data.trajectories.__wrapped__("test_ood")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    train = pendulum_data.trajectories("train")
    assert train["theta"].shape == (8, 201) and a["theta"].shape == (4, 601)  # 10 s and 30 s at 0.05 s
    assert np.abs(train["theta"][:, 0]).max() < 1.0 + 0.05 and np.abs(a["theta"][:, 0]).min() > 1.5 - 0.05


def test_the_ground_truth_scores_near_perfectly_and_wrong_equations_clearly_worse(pool: SandboxPool) -> None:
    spec = load_spec("pendulum")
    noise = pendulum_data.SYSTEM.noise_theta ** 2
    for split in ("train", "test"):
        results = {r.name: r for r in evaluate_functions(spec, {"truth": TRUTH, **WRONG}, split, pool)}
        assert all(r.evaluation.ok for r in results.values()), {k: r.evaluation.error for k, r in results.items()}
        truth = results["truth"]
        for name, score in truth.evaluation.scores.items():
            assert -score < 2 * noise  # the observation noise is most of what is left
            assert truth.metrics["nmse"][name] < 0.005
            for wrong in WRONG:
                assert results[wrong].evaluation.scores[name] < 100 * score  # at least 100 times the error


def test_an_equation_that_blows_up_is_invalid_output(pool: SandboxPool) -> None:
    spec = load_spec("pendulum")
    exploding = "def acceleration(t, theta, omega, params):\n    return np.exp(np.minimum(theta * 50.0, 50.0)) * omega ** 2\n"
    [result] = evaluate_functions(spec, {"boom": exploding}, "train", pool)
    assert result.evaluation.failure is FailureKind.INVALID_OUTPUT


def test_gp_run_through_the_cli(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "pendulum.db"
    proc = evolve("run", "pendulum", "--db", str(db), "--budget", "24", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    best = evolve_json("best", str(db), "--split", "test")
    assert set(best["scores"]) == {"test_id", "test_ood"}
