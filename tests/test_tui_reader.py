"""The TUI's archive reader: incremental reads agree with a fresh read; `status` stays what it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evolve import session
from evolve.archive import Archive, ArchiveError
from evolve.config import RunConfig
from evolve.loop import Evolution, islands_summary_rows
from evolve.status import read_status
from tui.reader import ArchiveReader

CONFIG = {
    "islands": {"num_islands": 3, "reset_period": 40},
    "loop": {"prompts_per_batch": 4, "samples_per_prompt": 2, "budget": 64, "seed": 5},
    "sandbox": {"timeout_s": 10.0, "workers": 2},
}


def test_incremental_polls_match_a_fresh_reader_and_status(tmp_path: Path) -> None:
    """Poll while a real run goes on (after each batch); the end state equals a new reader's."""
    db = tmp_path / "run.db"
    config = RunConfig().replace(**CONFIG)
    archive, spec = session.new_run("bin_packing_or", db, config)
    reader: ArchiveReader | None = None
    polls = []

    def after_batch(stats: object, rate: float) -> None:
        nonlocal reader
        if reader is None:
            reader = ArchiveReader.open(db)
        polls.append(reader.poll())

    with session.pool_for(config) as pool:
        session.open_evolution(archive, spec, config, pool, fresh=True).run(on_progress=after_batch)
    assert reader is not None and len(polls) == 8
    assert sum(p.new_programs for p in polls[1:]) > 0  # later polls read only the new rows
    last = reader.poll()
    fresh = ArchiveReader.open(db).poll()
    assert last.curves == fresh.curves  # a bucket of one sample: both exact
    assert last.resets == fresh.resets and len(last.resets) >= 1
    assert last.failure_series == fresh.failure_series
    assert [r.id for r in last.top] == [r.id for r in fresh.top]
    assert last.top == tuple(Archive.open(db, readonly=True).top(len(last.top)))
    assert json.loads(json.dumps(last.status.to_json())) == json.loads(json.dumps(read_status(Archive.open(db, readonly=True)).to_json()))
    assert last.curves[None].ys[-1] == last.status.score
    assert last.status.by_proposer == tuple(Archive.open(db, readonly=True).by_proposer())  # kept up to date from the new rows


def test_status_islands_from_the_state_equal_the_replay(tmp_path: Path) -> None:
    """The summary the loop commits is what replaying the membership gives, and old archives still replay."""
    db = tmp_path / "run.db"
    config = RunConfig().replace(**CONFIG)
    archive, spec = session.new_run("bin_packing_or", db, config)
    with session.pool_for(config) as pool:
        session.open_evolution(archive, spec, config, pool, fresh=True).run()
    replayed = islands_summary_rows(Evolution.restore_islands(archive, config, np.random.default_rng(0)))
    archive.close()
    assert [r.to_json() for r in read_status(Archive.open(db, readonly=True)).islands] == replayed
    old = tmp_path / "old.db"
    shutil.copy(db, old)
    writer = Archive.open(old)
    with writer.transaction():  # as an archive written before the summary existed
        writer.conn.execute("DELETE FROM state WHERE key = 'islands_summary'")
    assert [r.to_json() for r in read_status(Archive.open(old, readonly=True)).islands] == replayed


def test_a_database_without_a_run_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    Archive.create(db, {"not_a_spec": 1}).close()  # the tables, but no run record
    with pytest.raises(ArchiveError, match="not an evoloop archive"):
        ArchiveReader.open(db)
