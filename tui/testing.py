"""Drive the app headless: what the tests, the benchmark and the screenshot script share."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.worker import WorkerState

from tui.app import EvoloopApp

BUSY = (WorkerState.PENDING, WorkerState.RUNNING)


async def first_snapshot(pilot: Pilot[None], step: float = 0.005, bound: int = 4000) -> None:
    """Wait until the app shows its first snapshot (or an error)."""
    app = pilot.app
    assert isinstance(app, EvoloopApp)
    for _ in range(bound):  # a bound on the wait, not a check of speed
        if app.snapshot is not None or app.error:
            return
        await pilot.pause(step)


async def settle(pilot: Pilot[None], step: float = 0.005, bound: int = 4000) -> None:
    """Wait for the first snapshot, then until no worker is busy and the screen has caught up.

    `workers.wait_for_complete()` raises for a worker that was cancelled (a
    plot redrawn before it was done); this waits them out instead.
    """
    await first_snapshot(pilot, step, bound)
    for _ in range(bound):
        await pilot.pause()
        if not any(worker.state in BUSY for worker in pilot.app.workers):
            await pilot.pause()
            if not any(worker.state in BUSY for worker in pilot.app.workers):
                return
        await pilot.pause(step)
