"""What a long run meets besides candidates: a full disk, a kill before the first commit, a user's mistakes.

Each refused command must be one line with exit status 2 and change nothing;
a run stopped by a full disk or an early kill continues in place.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, evolve, evolve_json, start_evolve, wait_for
from evolve import session
from evolve.archive import Archive
from evolve.config import RunConfig

FAST = ["--workers", "2"]


def one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def programs(db: Path) -> dict[int, tuple[str, float | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {pid: (h, score) for pid, h, score in conn.execute("SELECT id, hash, score FROM programs")}


def digest(db: Path) -> str:
    """The archive's content: every table's rows (the file's bytes change with WAL checkpoints)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = [(n, sorted(map(repr, conn.execute(f"SELECT * FROM {n}")))) for n in names]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def unseeded(db: Path, spec: str = "bin_packing_or", budget: int = 20) -> Path:
    """What a kill between the archive's creation and the seed's commit leaves: the run record, no program."""
    archive, _ = session.new_run(spec, db, RunConfig().replace(loop={"budget": budget}))
    archive.close()
    return db


def tables_only(db: Path) -> Path:
    """What a kill while `evolve run` creates the file leaves: an SQLite file in WAL mode without tables (4 KB)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return db


# -- a user's mistakes ----------------------------------------------------------------


def test_mistakes_are_one_line_exit_2_and_change_nothing(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory\n")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:  # the same table names, another layout
        for table in ("run", "programs", "membership", "state"):
            conn.execute(f"CREATE TABLE {table} (x, y)")
    db = tmp_path / "ok.db"
    assert evolve("run", "bin_packing_or", "--db", str(db), "--budget", "20", *FAST).returncode == 0
    before = digest(db)

    one_line_error(evolve("export", str(db), str(a_file)), f"cannot write to {a_file}")
    one_line_error(evolve("export", str(db), str(a_file / "out")), f"cannot write to {a_file / 'out'}")
    one_line_error(evolve("run", "bin_packing_or", "--db", str(a_file / "x.db")), f"{a_file} is a file")
    one_line_error(evolve("run", "bin_packing_or", "--db", str(a_file / "deeper" / "x.db")), f"{a_file} is a file")
    one_line_error(evolve("status", str(foreign)), "is not an evoloop archive")
    one_line_error(evolve("best", str(foreign)), "is not an evoloop archive")
    one_line_error(evolve("resume", str(foreign)), "is not an evoloop archive")
    one_line_error(evolve("run", "bin_packing_or", "--budget", "abc"), "'abc' is not a valid integer")
    one_line_error(evolve("run", "bin_packing_or", "--no-such-option"), "No such option")
    one_line_error(evolve("statsu", str(db)), "No such command")
    one_line_error(evolve("run", "bin_packing_or", "--db", str(db)), "already exists")
    one_line_error(evolve("resume", str(db)), "has used its budget")
    assert digest(db) == before and a_file.read_text() == "not a directory\n"
    assert not (tmp_path / "notes.txt.lock").exists()


# -- a kill before the first commit ------------------------------------------------------


def test_run_over_an_unseeded_archive_of_the_same_spec_starts_it_in_place(tmp_path: Path) -> None:
    db = unseeded(tmp_path / "early.db")
    assert evolve_json("status", str(db))["samples"] == 0
    proc = evolve("run", "bin_packing_or", "--db", str(db), "--budget", "30", *FAST)
    assert proc.returncode == 0, proc.stderr
    status = evolve_json("status", str(db))
    assert status["samples"] == 30 and status["state"] == "finished" and status["budget"] == 30  # the new settings


def test_resume_seeds_an_unseeded_archive(tmp_path: Path) -> None:
    db = unseeded(tmp_path / "early.db", budget=24)
    proc = evolve("resume", str(db), *FAST)
    assert proc.returncode == 0, proc.stderr
    status = evolve_json("status", str(db))
    assert status["samples"] == 24 and status["state"] == "finished"
    assert Archive.open(db, readonly=True).top(1)  # the seed and what followed it are in


def test_a_file_killed_while_being_created_is_started_by_run_and_explained_by_resume(tmp_path: Path) -> None:
    db = tables_only(tmp_path / "partial.db")
    one_line_error(evolve("resume", str(db)), f"start it with `evolve run SPEC --db {db}`")
    one_line_error(evolve("status", str(db)), "stopped before its first commit")
    proc = evolve("run", "bin_packing_or", "--db", str(db), "--budget", "20", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert evolve_json("status", str(db))["samples"] == 20
    empty = tmp_path / "empty.db"  # a 0-byte file: the very first moment
    empty.write_bytes(b"")
    assert evolve("run", "bin_packing_or", "--db", str(empty), "--budget", "20", *FAST).returncode == 0


def test_an_unseeded_archive_refuses_another_spec_and_a_live_holder_and_stays_as_it_was(tmp_path: Path) -> None:
    db = unseeded(tmp_path / "early.db")
    before = digest(db)
    one_line_error(evolve("run", "cap_set", "--db", str(db)), "holds an unstarted run of another spec (bin_packing_or)")
    assert digest(db) == before
    holder = subprocess.Popen(  # another process holds the run lock (as one that seeds it right now would)
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from evolve.lock import run_lock\n"
         f"with run_lock(Path({str(db)!r})):\n    print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        one_line_error(evolve("resume", str(db), "--budget", "5"), "is being evolved by another process")
        one_line_error(evolve("run", "bin_packing_or", "--db", str(db), "--budget", "5"), "is being evolved by another")
    finally:
        holder.kill()
        holder.wait()
    assert digest(db) == before


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 3 MB tmpfs (needs the privilege to mount, which CI's root has)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_with_one_line_and_resume_loses_nothing(small_disk: Path, small_config: Path) -> None:
    db = small_disk / "run.db"
    proc = start_evolve("run", "bin_packing_or", "--db", str(db), "--budget", "100000", "--config", str(small_config),
                        *FAST)
    try:
        def committed() -> int:
            try:
                return len(programs(db))
            except sqlite3.Error:
                return 0

        assert wait_for(lambda: committed() >= 40 or proc.poll() is not None, 120), "no programs committed"
        with open(small_disk / "filler", "wb") as filler:  # take what space is left
            block = b"\0" * 65536
            try:
                while True:
                    filler.write(block)
                    filler.flush()
            except OSError:
                pass
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, (out[-2000:], err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    at_stop = programs(db)
    assert lines[0] == f"error: disk full: {len(at_stop)} programs committed in {db}; free space and `evolve resume {db}`"
    one_line_error(evolve("resume", str(db), *FAST), "disk full")  # still full: refused the same way
    assert programs(db) == at_stop

    (small_disk / "filler").unlink()
    samples = evolve_json("status", str(db))["samples"]
    resumed = evolve("resume", str(db), "--budget", str(samples + 40), *FAST)
    assert resumed.returncode == 0, resumed.stderr
    after = programs(db)
    assert at_stop.items() <= after.items() and len(after) > len(at_stop)  # nothing lost, and it went on
    status = evolve_json("status", str(db))
    assert status["samples"] == samples + 40 and status["state"] == "finished"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
