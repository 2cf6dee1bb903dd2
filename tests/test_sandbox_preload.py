"""The worker preloads the modules that programs keep importing, and only the allowed ones."""

from __future__ import annotations

import pytest

from sandbox import Limits, SandboxPool
from sandbox.worker import LEARN_AFTER

# Scores 1.0 when MODULE was already loaded in the child before the program imported it.
PROGRAM = '''
def evaluate(x):
    import sys
    loaded = {module!r} in sys.modules
    import {module}
    return float(loaded)
'''


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(1, Limits(timeout_s=30.0)) as p:
        yield p


def warm_runs(pool: SandboxPool, module: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        evaluation = pool.evaluate(PROGRAM.format(module=module), "evaluate", {"x": 0})
        assert evaluation.ok, evaluation.error
        out.append(evaluation.scores["x"])
    return out


def test_a_stdlib_module_programs_keep_importing_is_preloaded_after_a_few() -> None:
    with SandboxPool(1, Limits(timeout_s=30.0)) as pool:
        assert warm_runs(pool, "xml.dom.minidom", LEARN_AFTER + 3) == [0.0] * (LEARN_AFTER - 1) + [1.0] * 4


def test_scipy_is_not_preloaded_at_start_but_learned(pool: SandboxPool) -> None:
    pytest.importorskip("scipy")
    assert warm_runs(pool, "scipy.special", LEARN_AFTER + 1) == [0.0] * (LEARN_AFTER - 1) + [1.0] * 2


@pytest.mark.parametrize("module", ["this", "pytest"])  # acts on import; not an allowed package
def test_modules_outside_the_allowed_set_are_never_preloaded(pool: SandboxPool, module: str) -> None:
    assert warm_runs(pool, module, LEARN_AFTER + 2) == [0.0] * (LEARN_AFTER + 2)
