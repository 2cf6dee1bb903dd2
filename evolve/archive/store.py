"""The `Archive` class: opening and creating a run archive, its transactions and the loop's writes.

    archive = Archive.create(Path("runs/demo.db"), {"spec": ..., "config": ...})
    with archive.transaction():            # one per batch
        pid = archive.add_program(new_program)
        archive.put_state({"stats": ...})
    reader = Archive.open(Path("runs/demo.db"), readonly=True)

WAL mode with synchronous=FULL: a batch is one transaction (its programs,
island membership changes and the loop state with its RNG), so after a
`kill -9` at any moment the file holds exactly the batches that committed,
and `evolve resume` continues from the last one. Readers (status, best,
export, the TUI, finetune) open it read-only while the loop writes; a
read-only archive refuses every write.

The reads live in mixins by concept: programs (`programs.py`), what the TUI
and status aggregate (`queries.py`), the adapters table (`adapters.py`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from evolve.archive import schema
from evolve.archive.adapters import AdapterTable
from evolve.archive.errors import ArchiveError, DiskFull
from evolve.archive.programs import ProgramReads
from evolve.archive.queries import RunQueries
from evolve.archive.records import NewProgram, ProgramRow


class Archive(ProgramReads, RunQueries, AdapterTable):
    """An open run archive.

    `conn` is the raw connection, for tests that craft an archive by hand;
    code of evoloop goes through the methods, which own every SQL statement.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
        self.conn, self.path, self.readonly = conn, path, readonly
        self._program_columns = schema.columns(conn, "programs")
        self._program_sql = _program_select(self._program_columns)

    # -- opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, run: Mapping[str, Any]) -> Archive:
        """Create a new archive; refuses to overwrite an existing file (see `start_over` for one left unstarted)."""
        path = Path(path)
        if path.exists():
            raise ArchiveError(f"{path} already exists; continue it with `evolve resume {path}` or pass another --db")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path)
        except (OSError, sqlite3.Error) as exc:  # a parent is a file, not writable, ...
            file = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            why = f"{file} is a file" if file else getattr(exc, "strerror", None) or exc
            raise ArchiveError(f"cannot create {path}: {why}; pass another --db") from None
        return cls._fill(conn, path, run)

    @classmethod
    def start_over(cls, path: Path, run: Mapping[str, Any]) -> Archive:
        """Make an archive, in place, of a file that a run killed before its first commit left behind.

        That is an SQLite file without tables (the kill came while it was being created), or an archive
        whose run never finished seeding: no program, no loop state. The latter must be of the same spec
        (`run["spec"]`: name and source); its settings are replaced by `run`'s. Anything else is refused,
        and a refused call changes nothing. The caller holds the run lock.
        """
        path = Path(path)
        exists = f"{path} already exists; continue it with `evolve resume {path}` or pass another --db"
        try:
            conn = _connect(path)
            have = schema.tables(conn)
        except sqlite3.DatabaseError:
            raise ArchiveError(f"{path} already exists and is not an evoloop archive; pass another --db") from None
        if not have:
            return cls._fill(conn, path, run)
        if not schema.REQUIRED_TABLES <= have:
            conn.close()
            raise ArchiveError(f"{path} already exists and is not an evoloop archive; pass another --db")
        archive = cls(conn, path, readonly=False)
        if archive.seeded() or archive.counts().programs:
            conn.close()
            raise ArchiveError(exists)
        old, new = archive.run_info().get("spec") or {}, run["spec"]
        if (old.get("name"), old.get("source")) != (new["name"], new["source"]):
            conn.close()
            raise ArchiveError(f"{path} holds an unstarted run of another spec ({old.get('name')}); "
                               f"start that with `evolve resume {path}` or pass another --db")
        with archive.transaction():
            for key, value in {**run, "created": time.time()}.items():
                archive.set_run(key, value)
        return archive

    @classmethod
    def _fill(cls, conn: sqlite3.Connection, path: Path, run: Mapping[str, Any]) -> Archive:
        with _transaction(conn, path):  # tables and run record at once: a crash leaves no half-made archive
            schema.create_schema(conn)
            for key, value in {**run, "schema_version": schema.SCHEMA_VERSION, "created": time.time()}.items():
                conn.execute("INSERT INTO run(key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return cls(conn, path, readonly=False)

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> Archive:
        """Open an existing archive (read-only for everyone but the loop); writable opens migrate older files."""
        path = Path(path)
        if not path.is_file():
            raise ArchiveError(f"{path}: no such archive")
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = _connect(path)
            tables = schema.tables(conn)
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{path} is not an evoloop archive ({exc})") from exc
        if not tables:  # what a kill in the first moments of `evolve run` leaves
            conn.close()
            raise ArchiveError(f"{path} holds no run: it was stopped before its first commit; start it with "
                               f"`evolve run SPEC --db {path}`")
        problem = schema.foreign_layout(conn, tables)
        if problem:
            conn.close()
            raise ArchiveError(f"{path} is not an evoloop archive ({problem})")
        if not readonly:
            schema.migrate(conn)
        return cls(conn, path, readonly)

    def close(self) -> None:
        self.conn.close()

    # -- transactions ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable commit (DiskFull, rolled back, when the disk is full)."""
        assert not self.readonly, "read-only archive"
        with _transaction(self.conn, self.path):
            yield

    def seeded(self) -> bool:
        """Whether the run finished seeding (its first commit holds the loop state with the RNG)."""
        return self.conn.execute("SELECT 1 FROM state WHERE key = 'rng'").fetchone() is not None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold one read transaction: every read inside sees the same committed batches."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # -- writing (the loop only; inside a transaction) -------------------------------

    def add_program(self, p: NewProgram) -> int:
        """Insert one program; return its id."""
        ev = p.evaluation
        cur = self.conn.execute(
            "INSERT INTO programs(hash, function, parents, island, proposer, model, adapter, sample, scores,"
            " score, failure, error, wall_time, length, duplicates, created, node)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                p.hash, p.function, json.dumps(list(p.parents)), p.island, p.proposer, p.model, p.adapter,
                p.sample, json.dumps(dict(ev.scores)), ev.score if ev.ok else None,
                ev.failure.value if ev.failure else None, ev.error, ev.wall_time, len(p.function), time.time(),
                ev.node or None,
            ),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def add_duplicate(self, program_id: int) -> None:
        self.conn.execute("UPDATE programs SET duplicates = duplicates + 1 WHERE id = ?", (program_id,))

    def add_members(self, island: int, program_ids: Sequence[int]) -> None:
        self.conn.executemany("INSERT INTO membership(island, program_id) VALUES (?, ?)", [(island, i) for i in program_ids])

    def reset_island(self, island: int, founder: int) -> None:
        """Replace an island's members by its new founder."""
        self.conn.execute("DELETE FROM membership WHERE island = ?", (island,))
        self.add_members(island, [founder])

    def put_state(self, state: Mapping[str, Any]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in state.items()]
        )

    def set_run(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO run(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def add_event(self, kind: str, sample: int, data: Mapping[str, Any] | None = None, at: float | None = None) -> None:
        """Record an event at Unix time `at` (now unless given)."""
        self.conn.execute(
            "INSERT INTO events(time, sample, kind, data) VALUES (?, ?, ?, ?)",
            (time.time() if at is None else at, sample, kind, json.dumps(dict(data or {}))),
        )

    # -- bulk loading (synthetic archives for benchmarks and tests) -----------------------

    def add_rows(self, rows: Iterable[ProgramRow]) -> None:
        """Insert whole program rows as given (ids included), in one executemany."""
        self.conn.executemany(
            f"INSERT INTO programs({', '.join(schema.PROGRAM_COLUMNS)}) VALUES ({', '.join('?' * len(schema.PROGRAM_COLUMNS))})",
            (_program_values(r) for r in rows),
        )

    @contextmanager
    def without_indexes(self) -> Iterator[None]:
        """Drop the secondary indexes, and build them again afterwards: a bulk load is several times faster."""
        assert not self.readonly, "read-only archive"
        indexes = schema.secondary_indexes(self.conn)
        for name, _ in indexes:
            self.conn.execute(f"DROP INDEX {name}")
        try:
            yield
        finally:
            for _, sql in indexes:
                self.conn.execute(sql)

    # -- the run's records ---------------------------------------------------------------

    def run_info(self) -> dict[str, Any]:
        """Return the `run` table: what the run was started with (spec, config, schema version, created)."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM run")}

    def state(self) -> dict[str, Any]:
        """Return the `state` table: counters, RNG and islands state as of the last batch."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM state")}

    def members(self) -> dict[int, list[int]]:
        """Return each island's program ids in registration order."""
        out: dict[int, list[int]] = {}
        for island, pid in self.conn.execute("SELECT island, program_id FROM membership ORDER BY rowid"):
            out.setdefault(island, []).append(pid)
        return out

    def tables(self) -> frozenset[str]:
        return schema.tables(self.conn)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


SQLITE_FULL = 13  # "database or disk is full" (the primary result code, in the low byte of extended ones)


@contextmanager
def _transaction(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. on a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) != SQLITE_FULL:
            raise
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        committed = conn.execute("SELECT count(*) FROM programs").fetchone()[0] if "programs" in schema.tables(conn) else 0
        raise DiskFull(f"disk full: {committed} programs committed in {path}; free space and `evolve resume {path}`") from None


def _program_select(have: frozenset[str]) -> str:
    """Return the SELECT of whole `ProgramRow`s for this file (NULL for columns an older archive lacks)."""
    return "SELECT " + ", ".join(c if c in have else f"NULL AS {c}" for c in schema.PROGRAM_COLUMNS) + " FROM programs"


def _program_values(r: ProgramRow) -> tuple[Any, ...]:
    return (
        r.id, r.hash, r.function, json.dumps(list(r.parents)), r.island, r.proposer, r.model, r.adapter, r.sample,
        json.dumps(dict(r.scores)), r.score, r.failure, r.error, r.wall_time, r.length, r.duplicates, r.created, r.node,
    )
