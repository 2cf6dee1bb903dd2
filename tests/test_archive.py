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
