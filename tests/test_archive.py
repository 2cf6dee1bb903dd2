"""The archive: atomic batches, read-only readers, refusing what is not an archive."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from evolve.archive import Archive, ArchiveError, NewProgram
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
    assert [r["id"] for r in reader.top(5)] == [3, 4, 1]  # best first, ties by id
    counts = reader.counts()
    assert counts == {"programs": 4, "valid": 3, "duplicates": 1, "failures": {"timeout": 1}}
    assert reader.members() == {0: [1, 3]}
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("DELETE FROM programs")
    with writer.transaction():
        writer.reset_island(0, 4)
    assert reader.members() == {0: [4]}


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100, None])
def test_non_archives_are_refused(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.db"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE other(x)").connection.close()
    else:
        path.write_bytes(content)
    with pytest.raises(ArchiveError, match="not an evoloop archive"):
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
    assert "node" not in Archive.open(db, readonly=True).program(1)  # readers take the file as it is
    reopened = Archive.open(db)
    assert reopened.program(1)["node"] is None  # evaluated before: where is unknown
    ran_on = NewProgram(hash="h2", function="def f():\n    return 2\n", parents=(1,), island=0, proposer="test",
                        model="", sample=2, evaluation=Evaluation(scores={"a": -1.0}, node="host/0123abcd"))
    with reopened.transaction():
        reopened.add_program(ran_on)
    assert reopened.program(2)["node"] == "host/0123abcd"
    assert Archive.open(db).program(2)["node"] == "host/0123abcd"  # opening again adds nothing twice
    indexes = {row[0] for row in reopened.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "programs_node" in indexes  # `status` counts per node without reading every program
