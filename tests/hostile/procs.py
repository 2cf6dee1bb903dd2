"""Process-tree helpers for tests: who descends from a pool's workers, polled rather than slept on."""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.procs import alive, descendants  # noqa: F401  (the tests import them from here)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail after `timeout_s` (generous: the machine may be loaded)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s:g} s"
        time.sleep(0.02)
