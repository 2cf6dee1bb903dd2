"""The evaluation cascade: a candidate below its floor on the first input stops there, `culled`.

In the sandbox (a real pool: the floors cross the worker protocol as JSON)
and in a run: culled programs are recorded with the score that culled
them, never join an island, and with the cascade off there are none.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import evolve
from sandbox import FailureKind, Limits, SandboxPool

# The second input sleeps past the time limit: a result within it proves the input never ran.
PROGRAM = '''
import time

def evaluate(x):
    if x == 2:
        time.sleep(30)
    return float(x) * 10
'''
INPUTS = {"first": 1, "second": 2}


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=1, limits=Limits(timeout_s=3.0)) as pool:
        yield pool


def test_below_the_floor_on_the_first_input_the_rest_is_not_run(pool: SandboxPool) -> None:
    started = time.monotonic()
    culled = pool.evaluate(PROGRAM, "evaluate", INPUTS, Limits(timeout_s=3.0, floors=(("first", 10.5),)))
    assert time.monotonic() - started < 2.5
    assert culled.failure is FailureKind.CULLED and not culled.scores
    assert "scored 10 on input 'first', below its floor 10.5" in culled.error and "other 1 inputs" in culled.error


def test_at_or_above_the_floor_every_input_runs(pool: SandboxPool) -> None:
    for floor in (10.0, 9.0):  # equal to the floor is not below it
        evaluation = pool.evaluate(PROGRAM, "evaluate", INPUTS, Limits(timeout_s=1.0, floors=(("first", floor),)))
        assert evaluation.failure is FailureKind.TIMEOUT  # it went on to the second input


def test_a_floor_on_the_last_input_culls_nothing(pool: SandboxPool) -> None:
    fast = PROGRAM.replace("time.sleep(30)", "pass")
    evaluation = pool.evaluate(fast, "evaluate", INPUTS, Limits(floors=(("second", 1e9),)))
    assert evaluation.ok and evaluation.scores == {"first": 10.0, "second": 20.0}


def _run(db: Path, cascade: bool) -> None:
    config = evolve.RunConfig().replace(
        loop={"budget": 160, "seed": 0, "prompts_per_batch": 4, "cascade": cascade},
        islands={"num_islands": 2}, sandbox={"workers": 2})
    with evolve.start("bin_packing_or", db, config) as run:
        assert run.run() == "budget"


def test_a_run_with_the_cascade_records_culled_programs_outside_the_islands(tmp_path: Path) -> None:
    _run(tmp_path / "on.db", cascade=True)
    _run(tmp_path / "off.db", cascade=False)
    with sqlite3.connect(tmp_path / "on.db") as conn:
        culled = conn.execute("SELECT id, island, scores, score, error FROM programs WHERE failure = 'culled'").fetchall()
        members = {row[0] for row in conn.execute("SELECT program_id FROM membership")}
        first = next(iter(json.loads(conn.execute("SELECT scores FROM programs WHERE id = 1").fetchone()[0])))
        valid = conn.execute("SELECT island, scores FROM programs WHERE failure IS NULL").fetchall()
    assert culled, "a GP run on four OR sets culls some candidates"
    # A floor is the first-input score of a valid program of the culled one's island (or of the seed, in all).
    floors = {(island, f"{json.loads(scores)[first]:.6g}") for island, scores in valid}
    for pid, island, scores, score, error in culled:
        assert pid not in members and score is None and scores in (None, "{}", "null")
        got, floor = (float(v) for v in re.fullmatch(
            rf"scored (\S+) on input {first!r}, below its floor (\S+): the other 3 inputs were not run", error).groups())
        assert got < floor and ({(island, f"{floor:.6g}"), (None, f"{floor:.6g}")} & floors), error
    with sqlite3.connect(tmp_path / "off.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM programs WHERE failure = 'culled'").fetchone()[0] == 0
