"""The run archive: one SQLite file per run, written by the loop alone.

WAL mode with synchronous=FULL: a batch is one transaction (its programs,
island membership changes and the loop state with its RNG), so after a
`kill -9` at any moment the file holds exactly the batches that committed,
and `evolve resume` continues from the last one. Readers (status, best,
export, the TUI, finetune) open it read-only while the loop writes.

Tables: `run` (key/value: spec, config, seed), `programs` (every unique
candidate, valid or not), `membership` (island -> program ids in registration
order), `state` (key/value: counters, RNG state, islands state), `events`
(starts, stops, island resets).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import Evaluation

SCHEMA_VERSION = 1
SCHEMA_NODE_INDEX = "CREATE INDEX programs_node ON programs (node, score) WHERE node IS NOT NULL"  # empty unless on Ray
SCHEMA = (
    "CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE programs (
        id INTEGER PRIMARY KEY, hash TEXT NOT NULL, function TEXT NOT NULL, parents TEXT, island INTEGER,
        proposer TEXT, model TEXT, adapter TEXT, sample INTEGER, scores TEXT, score REAL, failure TEXT,
        error TEXT, wall_time REAL, length INTEGER, duplicates INTEGER DEFAULT 0, created REAL, node TEXT)""",
    "CREATE UNIQUE INDEX idx_programs_hash ON programs (hash)",
    "CREATE INDEX idx_programs_score ON programs (score)",
    # For readers (the TUI): best score per island and sample range, per-island top programs, failures
    # by island and sample. Archives created before these existed work without them, only slower on big runs.
    "CREATE INDEX programs_history ON programs (island, sample, score)",
    "CREATE INDEX programs_island_score ON programs (island, score)",
    "CREATE INDEX programs_failed ON programs (island, sample, failure) WHERE failure IS NOT NULL",
    "CREATE INDEX programs_origin ON programs (proposer, model, adapter, score)",
    SCHEMA_NODE_INDEX,
    "CREATE TABLE membership (island INTEGER, program_id INTEGER)",
    "CREATE INDEX idx_membership_island ON membership (island)",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, time REAL, sample INTEGER, kind TEXT, data TEXT)",
)


class ArchiveError(Exception):
    """A file that is not a usable evoloop archive."""


@dataclass(frozen=True)
class NewProgram:
    """A candidate to record, with its evaluation (None: not evaluated)."""

    hash: str
    function: str
    parents: tuple[int, ...]
    island: int | None
    proposer: str
    model: str
    sample: int  # index of the sample that produced it (0-based, over the run)
    evaluation: Evaluation
    adapter: str = ""


class Archive:
    """An open run archive."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
        self.conn, self.path, self.readonly = conn, path, readonly

    # -- opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, run: dict[str, Any]) -> Archive:
        """Create a new archive; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise ArchiveError(f"{path} already exists; continue it with `evolve resume {path}` or pass another --db")
        path.parent.mkdir(parents=True, exist_ok=True)
        archive = cls(cls._connect(path), path, readonly=False)
        archive._create_schema()
        with archive.transaction():
            for key, value in {**run, "schema_version": SCHEMA_VERSION, "created": time.time()}.items():
                archive.conn.execute("INSERT INTO run(key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return archive

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> Archive:
        """Open an existing archive (read-only for everyone but the loop)."""
        path = Path(path)
        if not path.is_file():
            raise ArchiveError(f"{path}: no such archive")
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = cls._connect(path)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{path} is not an evoloop archive ({exc})") from exc
        if not {"run", "programs", "membership", "state"} <= tables:
            raise ArchiveError(f"{path} is not an evoloop archive (no run/programs tables)")
        if not readonly:
            _add_missing_columns(conn)
        return cls(conn, path, readonly)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _create_schema(self) -> None:
        """Create the tables and indexes, all in one transaction (a crash leaves no half-made archive)."""
        with self.transaction():
            for statement in SCHEMA:
                self.conn.execute(statement)

    def close(self) -> None:
        self.conn.close()

    # -- writing (the loop only) ----------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable commit."""
        assert not self.readonly, "read-only archive"
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def add_program(self, p: NewProgram) -> int:
        """Insert one program (inside a transaction); return its id."""
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
        return int(cur.lastrowid)

    def add_duplicate(self, program_id: int) -> None:
        self.conn.execute("UPDATE programs SET duplicates = duplicates + 1 WHERE id = ?", (program_id,))

    def add_members(self, island: int, program_ids: Sequence[int]) -> None:
        self.conn.executemany("INSERT INTO membership(island, program_id) VALUES (?, ?)", [(island, i) for i in program_ids])

    def reset_island(self, island: int, founder: int) -> None:
        self.conn.execute("DELETE FROM membership WHERE island = ?", (island,))
        self.add_members(island, [founder])

    def put_state(self, state: dict[str, Any]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in state.items()]
        )

    def set_run(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO run(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def add_event(self, kind: str, sample: int, data: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO events(time, sample, kind, data) VALUES (?, ?, ?, ?)",
            (time.time(), sample, kind, json.dumps(data or {})),
        )

    # -- reading ----------------------------------------------------------------

    def run_info(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM run")}

    def state(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM state")}

    def find_hash(self, program_hash: str) -> int | None:
        """Return the id of the program with this normalized hash, if any (uses the unique index)."""
        row = self.conn.execute("SELECT id FROM programs WHERE hash = ?", (program_hash,)).fetchone()
        return row[0] if row else None

    def hashes(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT hash, id FROM programs"))

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for island, pid in self.conn.execute("SELECT island, program_id FROM membership ORDER BY rowid"):
            out.setdefault(island, []).append(pid)
        return out

    def program(self, program_id: int) -> dict[str, Any]:
        rows = self._programs("WHERE id = ?", (program_id,))
        if not rows:
            raise ArchiveError(f"{self.path}: no program {program_id}")
        return rows[0]

    def programs(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            out.update({r["id"]: r for r in self._programs(f"WHERE id IN ({marks})", chunk)})
        return out

    def top(self, k: int, island: int | None = None) -> list[dict[str, Any]]:
        """Return the k best valid programs, best first (ties: the earliest).

        With `island`: those proposed on it, and the seed (registered on every island).
        """
        if island is not None:
            rows = self._programs("WHERE island = ? AND score IS NOT NULL ORDER BY score DESC, id ASC LIMIT ?", (island, k))
            rows += self._programs("WHERE island IS NULL AND score IS NOT NULL", ())
            return sorted(rows, key=lambda r: (-r["score"], r["id"]))[:k]
        return self._programs("WHERE score IS NOT NULL ORDER BY score DESC, id ASC LIMIT ?", (k,))

    def counts(self) -> dict[str, Any]:
        """Return totals over the programs table: all, valid, duplicates, failures by kind."""
        total, valid, dups = self.conn.execute(
            "SELECT COUNT(*), COUNT(score), COALESCE(SUM(duplicates), 0) FROM programs"
        ).fetchone()
        failures = dict(self.conn.execute("SELECT failure, COUNT(*) FROM programs WHERE failure IS NOT NULL GROUP BY failure"))
        return {"programs": total, "valid": valid, "duplicates": dups, "failures": failures}

    def by_node(self) -> list[dict[str, Any]]:
        """Count programs and valid ones per Ray node that evaluated them ([] for a local run, or an archive from before)."""
        if "node" not in {row[1] for row in self.conn.execute("PRAGMA table_info(programs)")}:
            return []
        rows = self.conn.execute(
            "SELECT node, COUNT(*), COUNT(score) FROM programs WHERE node IS NOT NULL GROUP BY node ORDER BY node"
        )
        return [{"node": node, "programs": n, "valid": valid} for node, n, valid in rows]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self.conn.execute(f"SELECT id, time, sample, kind, data FROM events {where} ORDER BY id", args)
        return [{"id": i, "time": t, "sample": s, "kind": k, "data": json.loads(d)} for i, t, s, k, d in rows]

    def _programs(self, where: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        cur = self.conn.execute(f"SELECT * FROM programs {where}", tuple(args))
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur]
        for r in rows:
            r["parents"] = json.loads(r["parents"] or "[]")
            r["scores"] = json.loads(r["scores"] or "{}")
        return rows


# Columns added after the first schema: (name, SQL type). Opening an older archive for writing adds them.
_LATER_COLUMNS = (("node", "TEXT"),)  # the Ray node that evaluated a program (NULL: the local pool)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring an archive made by an older evoloop up to this schema (one ALTER per missing column)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(programs)")}
    for name, kind in _LATER_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE programs ADD COLUMN {name} {kind}")
    conn.execute(SCHEMA_NODE_INDEX.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
