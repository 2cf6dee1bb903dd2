"""The loop: determinism, hostile candidates, and kill -9 then resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from conftest import ROOT, evolve, evolve_json
from evolve import session
from evolve.archive import Archive
from evolve.config import RunConfig
from evolve.proposers.base import Prompt, TextProposer

SMALL = {
    "islands": {"num_islands": 4, "reset_period": 60},
    "loop": {"prompts_per_batch": 4, "samples_per_prompt": 2},
    "sandbox": {"timeout_s": 10.0},
}


def run_library(db: Path, seed: int, workers: int, budget: int) -> list[str]:
    config = RunConfig().replace(**SMALL).replace(loop={"budget": budget, "seed": seed}, sandbox={"workers": workers})
    archive, spec = session.new_run("bin_packing_or", db, config)
    with session.pool_for(config) as pool:
        session.open_evolution(archive, spec, config, pool, fresh=True).run()
    return [h for h, _ in sorted(archive.hashes().items(), key=lambda kv: kv[1])]  # in id order


def test_same_seed_same_hashes(tmp_path: Path) -> None:
    first = run_library(tmp_path / "a.db", seed=7, workers=1, budget=96)
    second = run_library(tmp_path / "b.db", seed=7, workers=1, budget=96)
    other = run_library(tmp_path / "c.db", seed=8, workers=1, budget=96)
    assert len(first) > 30
    assert first == second
    assert first != other
    # The schedule does not depend on timing: two workers give the same sequence too.
    assert run_library(tmp_path / "d.db", seed=7, workers=2, budget=96) == first


HOSTILE = {
    "error": "def priority(item, bins):\n    return 1 / 0\n",
    "timeout": "def priority(item, bins):\n    while True:\n        pass\n",
    "invalid-output": "def priority(item, bins):\n    return 'garbage'\n",
    "memory": "def priority(item, bins):\n    import numpy as np\n    x = np.ones((1 << 40,))\n    return x[: len(bins)]\n",
}


class HostileProposer(TextProposer):
    """A real proposer that writes hostile programs first, then plain valid ones."""

    name, model = "hostile", ""

    def __init__(self) -> None:
        self.queue = list(HOSTILE.values())
        self.count = 0

    def write(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        out = []
        for _ in prompts:
            batch = []
            for _ in range(n):
                self.count += 1
                batch.append(self.queue.pop(0) if self.queue else f"def priority(item, bins):\n    return -(bins - item) * {self.count}\n")
            out.append(batch)
        return out


def test_hostile_candidates_are_failures_and_the_run_goes_on(tmp_path: Path) -> None:
    config = RunConfig().replace(**SMALL).replace(loop={"budget": 16}, sandbox={"workers": 2, "timeout_s": 2.0, "memory_mb": 256})
    archive, spec = session.new_run("bin_packing_or", tmp_path / "h.db", config)
    rng = np.random.default_rng(0)
    with session.pool_for(config) as pool:
        from evolve.loop import Evolution
        from islands import ProgramsDatabase

        evolution = Evolution(spec, archive, pool, HostileProposer(), ProgramsDatabase(config.islands, rng), rng, config)
        evolution.seed()
        started = time.monotonic()
        assert evolution.run() == "budget"
        assert time.monotonic() - started < 30  # the infinite loop was killed at its deadline
    rows = {r.function: r for r in archive.written_by("hostile")}
    for kind, source in HOSTILE.items():
        assert rows[source].failure == kind, (kind, rows[source].error)
        assert rows[source].score is None and rows[source].error
    assert evolution.stats.samples == 16 and evolution.stats.valid >= 12
    assert evolution.stats.failures == {kind: 1 for kind in HOSTILE}
    # A failure names its line in the candidate's own function, or the spec's line when the spec's code raised.
    assert rows[HOSTILE["error"]].error == "ZeroDivisionError: division by zero (line 2 of priority)"
    raising = next(i for i, line in enumerate(spec.source.splitlines(), 1) if "raise InvalidOutput(" in line)
    assert rows[HOSTILE["invalid-output"]].error.endswith(f"(line {raising} of {spec.path.name})")


def test_kill_9_then_resume_keeps_everything(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve.cli", "run", "bin_packing_or", "--db", str(db), "--budget", "100000",
         "--workers", "2", "--config", str(small_config)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        committed = 0
        while committed < 150:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                        committed = conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
                except sqlite3.OperationalError:
                    pass  # the file exists before its tables do
        before_kill = _snapshot(db)
        os.killpg(proc.pid, signal.SIGKILL)  # the loop and its sandbox workers, mid-batch
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    after_kill = _snapshot(db)
    assert before_kill["programs"].items() <= after_kill["programs"].items()  # nothing committed was lost
    status = evolve_json("status", str(db))
    assert status["state"] == "interrupted"
    samples_at_kill = status["samples"]
    members_at_kill = Archive.open(db, readonly=True).members()

    resumed = evolve("resume", str(db), "--budget", str(samples_at_kill + 80))
    assert resumed.returncode == 0, resumed.stderr
    final = _snapshot(db)
    assert after_kill["programs"].items() <= final["programs"].items()
    assert len(final["programs"]) > len(after_kill["programs"])
    status = evolve_json("status", str(db))
    assert status["samples"] == samples_at_kill + 80 and status["state"] == "finished"
    # The islands continued: each island's members at the kill are still its members
    # (or the island was reset after the resume, which the events table records).
    members = Archive.open(db, readonly=True).members()
    resets = {e.data["island"] for e in Archive.open(db, readonly=True).events("reset") if e.sample > samples_at_kill}
    for island, ids in members_at_kill.items():
        if island not in resets:
            assert members[island][: len(ids)] == ids
    # New programs were produced from the restored islands' members.
    with sqlite3.connect(db) as conn:
        new_parents = conn.execute("SELECT parents FROM programs WHERE sample > ?", (samples_at_kill,)).fetchall()
    assert new_parents


def _snapshot(db: Path) -> dict:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        programs = {pid: (h, s) for pid, h, s in conn.execute("SELECT id, hash, score FROM programs")}
    return {"programs": programs}
