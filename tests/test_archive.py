"""The archive: atomic batches, read-only readers, refusing what is not an archive."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from evolve.archive import Archive, ArchiveError, Counts, NewProgram, NodeCount, schema
from sandbox import Evaluation, FailureKind


def program(i: int, score: float | None) -> NewProgram:
    ev = Evaluation(scores={"a": score}) if score is not None else Evaluation(failure=FailureKind.TIMEOUT, error="slow")
    return NewProgram(hash=f"h{i}", function=f"def f():\n    return {i}\n", parents=(), island=0,
                      proposer="test", model="", sample=i, evaluation=ev)


def test_a_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "a.db", {"spec": {}})
    with archive.transaction():
        archive.add_program(program(1, -3.0))
        archive.put_state({"stats": {"samples": 1}})
    with pytest.raises(RuntimeError), archive.transaction():
        archive.add_program(program(2, -1.0))
        archive.put_state({"stats": {"samples": 2}})
        raise RuntimeError("crash mid-batch")
    assert archive.hashes() == {"h1": 1}
    assert archive.state() == {"stats": {"samples": 1}}


def test_readers_see_committed_batches_and_cannot_write(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    writer = Archive.create(db, {"spec": {"name": "x"}})
    reader = Archive.open(db, readonly=True)
    with writer.transaction():
        for i, score in enumerate([-5.0, None, -2.0, -2.0]):
            writer.add_program(program(i, score))
        writer.add_members(0, [1, 3])
        writer.add_duplicate(3)
    assert [r.id for r in reader.top(5)] == [3, 4, 1]  # best first, ties by id
    counts = reader.counts()
    assert counts == Counts(programs=4, valid=3, duplicates=1, failures={"timeout": 1})
    assert reader.members() == {0: [1, 3]}
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("DELETE FROM programs")
    with writer.transaction():
        writer.reset_island(0, 4)
    assert reader.members() == {0: [4]}


@pytest.mark.parametrize(("content", "message"), [
    (b"", "holds no run: it was stopped before its first commit"),  # an `evolve run` killed at once
    (b"not a database at all" * 100, "not an evoloop archive"),
    (None, "not an evoloop archive"),
])
def test_non_archives_are_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.db"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE other(x)").connection.close()
    else:
        path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        Archive.open(path, readonly=True)


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    Archive.create(tmp_path / "a.db", {})
    with pytest.raises(ArchiveError, match="evolve resume"):
        Archive.create(tmp_path / "a.db", {})


def test_an_archive_from_before_the_node_column_gains_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    archive = Archive.create(db, {"spec": {}})
    with archive.transaction():
        archive.add_program(program(1, -3.0))
    archive.conn.execute("DROP INDEX programs_node")  # as an archive written before the column existed
    archive.conn.execute("ALTER TABLE programs DROP COLUMN node")
    archive.close()
    old = Archive.open(db, readonly=True)  # readers take the file as it is
    assert old.program(1).node is None and old.by_node() == [] and old.program(1).function == "def f():\n    return 1\n"
    assert "node" not in schema.columns(old.conn, "programs")  # a reader never migrates
    reopened = Archive.open(db)
    assert reopened.program(1).node is None  # evaluated before: where is unknown
    ran_on = NewProgram(hash="h2", function="def f():\n    return 2\n", parents=(1,), island=0, proposer="test",
                        model="", sample=2, evaluation=Evaluation(scores={"a": -1.0}, node="host/0123abcd"))
    with reopened.transaction():
        reopened.add_program(ran_on)
    assert reopened.program(2).node == "host/0123abcd"
    assert Archive.open(db).program(2).node == "host/0123abcd"  # opening again adds nothing twice
    assert reopened.by_node() == [NodeCount("host/0123abcd", 1, 1)]
    indexes = {row[0] for row in reopened.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "programs_node" in indexes  # `status` counts per node without reading every program


def filled(tmp_path: Path) -> Archive:
    """An archive of 12 programs on 2 islands: sample i scores -i on island i % 2, every third one failed."""
    archive = Archive.create(tmp_path / "q.db", {"spec": {}})
    with archive.transaction():
        for i in range(12):
            ev = Evaluation(failure=FailureKind.ERROR, error="boom\nline 2") if i % 3 == 2 else Evaluation(scores={"a": -float(i)})
            archive.add_program(NewProgram(hash=f"h{i}", function=f"def f():\n    return {i}\n", parents=(1,) if i else (),
                                           island=None if i == 0 else i % 2, proposer="seed" if i == 0 else "gp",
                                           model="", sample=i, evaluation=ev))
        archive.add_event("reset", 5, {"island": 1, "founder": 4})
        archive.add_event("stop", 12, {"reason": "budget"})
    return archive


def test_program_reads_are_typed_rows(tmp_path: Path) -> None:
    archive = filled(tmp_path)
    row = archive.program(5)  # sample 4
    assert (row.id, row.island, row.sample, row.parents, dict(row.scores), row.score) == (5, 0, 4, (1,), {"a": -4.0}, -4.0)
    assert (row.failure, row.error, row.proposer, row.model, row.adapter, row.length) == (None, "", "gp", "", "", len(row.function))
    failed = archive.program(3)
    assert (failed.score, failed.failure, dict(failed.scores)) == (None, "error", {})
    with pytest.raises(ArchiveError, match="no program 99"):
        archive.program(99)
    assert sorted(archive.programs([1, 5, 99])) == [1, 5]
    assert [r.id for r in archive.top(3, island=1)] == [1, 2, 4]  # the seed (on every island) first
    assert archive.best_until(0).id == 1 and archive.best_until(-1) is None
    assert [r.id for r in archive.written_by("seed")] == [1] and [r.id for r in archive.children()] == list(range(2, 13))
    # Samples [3, 9): valid 3, 4, 6, 7; the best two (ties kept) score -3 and -4.
    assert archive.count_valid(3, 9) == 4 and archive.count_valid(9) == 2
    assert sorted(r.sample for r in archive.window_best(3, 9, keep=2)) == [3, 4]
    assert (archive.next_sample(), archive.last_program_id()) == (12, 12)
    assert archive.sizes().programs == 12 and archive.sizes().events == 2
    assert [(o.proposer, o.programs, o.valid, o.best_score) for o in archive.by_proposer()] == [("gp", 11, 7, -1.0), ("seed", 1, 1, 0.0)]


def test_queries_behind_status_and_the_tui(tmp_path: Path) -> None:
    archive = filled(tmp_path)
    assert [e.kind for e in archive.events()] == ["reset", "stop"] and archive.events("reset")[0].data == {"island": 1, "founder": 4}
    last = archive.last_event()
    assert last is not None and (last.kind, last.sample, last.data) == ("stop", 12, {"reason": "budget"})
    assert [e.kind for e in archive.events_after(1, "stop")] == ["stop"] and archive.events_after(2, "stop") == []
    assert archive.last_event_id() == 2
    assert archive.samples_of([5, 12]) == {5: 4, 12: 11} and archive.samples_of([]) == {}
    assert [(f.id, f.island, f.sample, f.failure) for f in archive.latest_failures([0, 1], limit=3)] == [
        (12, 1, 11, "error"), (9, 0, 8, "error"), (6, 1, 5, "error")]
    assert [p.id for p in archive.programs_after(10)] == [11, 12]
    assert archive.seed_scores(until_id=12) == [(0, 0.0)]
    assert sorted(archive.failure_counts(bucket=6, until_id=12)) == [(0, 0, "error", 1), (0, 1, "error", 1), (1, 0, "error", 1),
                                                                     (1, 1, "error", 1)]
    # Best score per island and bucket of 4 samples: over the history index, every pair (None: nothing valid) ...
    indexed = archive.best_by_bucket([0, 1], bucket=4, last_bucket=2, until_id=12)
    assert sorted(indexed) == [(0, 0, None), (0, 1, -4.0), (0, 2, -10.0), (1, 0, -1.0), (1, 1, -7.0), (1, 2, -9.0)]
    # ... and on an archive from before the index, the GROUP BY, which gives the same figures.
    archive.conn.execute(f"DROP INDEX {schema.HISTORY_INDEX}")
    assert sorted(archive.best_by_bucket([0, 1], bucket=4, last_bucket=2, until_id=12)) == sorted(indexed)
