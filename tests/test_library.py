"""The library API (README "Library API"): a run started, stopped, resumed and read from Python, as a script would."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import evolve
from evolve.errors import ConfigError
from evolve.lock import RunBusy


def small(budget: int) -> evolve.RunConfig:
    return evolve.RunConfig().replace(loop={"budget": budget, "seed": 0, "prompts_per_batch": 4},
                                      islands={"num_islands": 2}, sandbox={"workers": 1})


def test_start_run_resume_and_load(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    with evolve.start("bin_packing_or", db, small(40)) as run:
        assert run.layers.describe()
        assert run.run() == "budget"
        status = run.status()
        assert status.samples == 40 and status.to_json()["samples"] == 40
        with pytest.raises(RunBusy):  # the run holds its lock while open
            evolve.resume(db, budget=80)
    with evolve.resume(db, budget=80) as run:
        assert run.run() == "budget" and run.stats.samples == 80
    with evolve.load(db) as run:
        assert run.status().samples == 80
        [best] = run.best(top=1, split="test")
        assert best.split == "test" and best.score is not None and best.to_json()["train_score"] == best.train_score
        files = run.export(tmp_path / "out", top=2)
        assert [f.name for f in files][:1] and (tmp_path / "out" / "index.json").is_file()
        with pytest.raises(ConfigError, match="read-only"):
            run.run()


def test_a_refused_resume_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "done.db"
    with evolve.start("bin_packing_or", db, small(20)) as run:
        run.run()
        stored = run.archive.run_info()["config"]["loop"]["budget"]
        with pytest.raises(RunBusy):
            evolve.resume(db, budget=5000)  # refused by the lock: the budget stays
    with pytest.raises(ConfigError, match="used its budget"):
        evolve.resume(db, budget=10)
    with evolve.load(db) as run:
        assert run.archive.run_info()["config"]["loop"]["budget"] == stored == 20


def test_interrupt_from_another_thread_stops_the_run(tmp_path: Path) -> None:
    with evolve.start("bin_packing_or", tmp_path / "i.db", small(100_000)) as run:
        timer = threading.Timer(2.0, run.interrupt)
        timer.start()
        assert run.run() == "stopped"
        timer.join()
        assert 0 < run.stats.samples < 100_000


def test_a_deleted_lock_file_does_not_let_a_second_loop_in(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    with evolve.start("bin_packing_or", db, small(20)) as run:
        Path(f"{db}.lock").unlink()  # the 0-byte file stays after every run and invites cleaning up
        with pytest.raises(RunBusy):
            evolve.resume(db, budget=5000)
        assert run.status().state == "running"
        assert run.run() == "budget"
    with evolve.load(db) as run:
        assert run.archive.run_info()["config"]["loop"]["budget"] == 20  # the refused resume stored nothing
