"""The archive's tables and indexes, and what brings an older archive up to them.

Tables: `run` (key/value: spec, config, seed), `programs` (every unique
candidate, valid or not), `membership` (island -> program ids in registration
order), `state` (key/value: counters, RNG state, islands state), `events`
(starts, stops, island resets, rounds), and `adapters` (one row per LoRA
round), which exists only once a round has been recorded: the TUI shows its
view when it is there.

JSON columns: `programs.parents` (a list of ids, worst parent first),
`programs.scores` (input name -> score), `events.data`, `adapters.loss_curve`,
and every `run`/`state` value.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1
NODE_INDEX = "CREATE INDEX programs_node ON programs (node, score) WHERE node IS NOT NULL"  # empty unless on Ray
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
    NODE_INDEX,
    "CREATE TABLE membership (island INTEGER, program_id INTEGER)",
    "CREATE INDEX idx_membership_island ON membership (island)",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, time REAL, sample INTEGER, kind TEXT, data TEXT)",
)
REQUIRED_TABLES = frozenset({"run", "programs", "membership", "state"})
HISTORY_INDEX = "programs_history"  # the TUI's per-(island, bucket) best-score ranges go over it

# The programs table's columns in `ProgramRow` order; `node` came later (NULL: the local pool, or unknown).
PROGRAM_COLUMNS = (
    "id", "hash", "function", "parents", "island", "proposer", "model", "adapter", "sample", "scores", "score",
    "failure", "error", "wall_time", "length", "duplicates", "created", "node",
)
# Columns added after the first schema: (name, SQL type). Opening an older archive for writing adds them.
LATER_COLUMNS = (("node", "TEXT"),)  # the Ray node that evaluated a program (NULL: the local pool)

ADAPTERS_TABLE = "adapters"
ADAPTER_COLUMNS: dict[str, str] = {  # name -> SQLite type, in the order the TUI shows them
    "round": "INTEGER PRIMARY KEY", "path": "TEXT", "method": "TEXT", "base_model": "TEXT", "examples": "INTEGER",
    "steps": "INTEGER", "base_loss": "REAL", "adapter_loss": "REAL", "duration_s": "REAL", "parent": "TEXT",
    "data_until_sample": "INTEGER", "started_sample": "INTEGER", "finished_sample": "INTEGER",
    "loss_curve": "TEXT", "created": "REAL",
}
ADAPTERS_DDL = f"CREATE TABLE IF NOT EXISTS {ADAPTERS_TABLE} ({', '.join(f'{k} {t}' for k, t in ADAPTER_COLUMNS.items())})"


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes (the caller holds the transaction)."""
    for statement in SCHEMA:
        conn.execute(statement)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring an archive made by an older evoloop up to this schema (one ALTER per missing column)."""
    have = columns(conn, "programs")
    for name, kind in LATER_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE programs ADD COLUMN {name} {kind}")
    conn.execute(NODE_INDEX.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))


REQUIRED_RUN_KEYS = ("spec",)  # written with the tables, in the same transaction (and "config", by evoloop)


def foreign_layout(conn: sqlite3.Connection, have: frozenset[str]) -> str | None:
    """Say what makes a file with tables not an evoloop archive (None: it is one, of this or an older schema)."""
    if not REQUIRED_TABLES <= have:
        return "no run/programs tables"
    missing = {"id", "hash", "function", "score", "scores"} - columns(conn, "programs")
    if missing or {"key", "value"} - columns(conn, "run"):
        return "its tables have another layout"
    keys = {k for (k,) in conn.execute("SELECT key FROM run")}
    if set(REQUIRED_RUN_KEYS) - keys:
        return "no run record"
    return None


def tables(conn: sqlite3.Connection) -> frozenset[str]:
    return frozenset(name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    """Return a table's column names (none when it does not exist); `table` is one of ours, never user input."""
    return frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))


def has_index(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone() is not None


def secondary_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Return (name, CREATE statement) of every index that is not a table's own (primary key, UNIQUE column)."""
    return list(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
