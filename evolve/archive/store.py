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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evolve.archive import schema
from evolve.archive.adapters import AdapterTable
from evolve.archive.errors import ArchiveError
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
        """Create a new archive; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise ArchiveError(f"{path} already exists; continue it with `evolve resume {path}` or pass another --db")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        with _transaction(conn):  # tables and run record at once: a crash leaves no half-made archive
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
        if not schema.REQUIRED_TABLES <= tables:
            raise ArchiveError(f"{path} is not an evoloop archive (no run/programs tables)")
        if not readonly:
            schema.migrate(conn)
        return cls(conn, path, readonly)

    def close(self) -> None:
        self.conn.close()

    # -- transactions ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable commit."""
        assert not self.readonly, "read-only archive"
        with _transaction(self.conn):
            yield

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


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _program_select(have: frozenset[str]) -> str:
    """Return the SELECT of whole `ProgramRow`s for this file (NULL for columns an older archive lacks)."""
    return "SELECT " + ", ".join(c if c in have else f"NULL AS {c}" for c in schema.PROGRAM_COLUMNS) + " FROM programs"


def _program_values(r: ProgramRow) -> tuple[Any, ...]:
    return (
        r.id, r.hash, r.function, json.dumps(list(r.parents)), r.island, r.proposer, r.model, r.adapter, r.sample,
        json.dumps(dict(r.scores)), r.score, r.failure, r.error, r.wall_time, r.length, r.duplicates, r.created, r.node,
    )
