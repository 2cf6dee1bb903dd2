"""The `adapters` table: one row per LoRA round, and the figures of the programs each arm wrote.

A mixin of `Archive`. The table is created with the first round's row (in
the loop's batch transaction, or by `evolve finetune` when no loop holds
the archive), so an archive without rounds has none and the TUI hides its
adapters view. What counts as a round's window and its control arm is
`finetune.registry`'s business; here are the rows and the one query per arm.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from evolve.archive import schema
from evolve.archive.records import AdapterRow, ArmFigures, RawTable

RAW_LIMIT = 100  # rows of an `adapters` table of another shape that the TUI shows
REGISTRY_COLUMNS = frozenset({"round", "path", "finished_sample"})  # what makes an `adapters` table the registry's


class AdapterTable:
    """Reads and writes of the `adapters` table."""

    conn: sqlite3.Connection
    readonly: bool

    def has_adapters(self) -> bool:
        """Tell whether the archive has an `adapters` table (a round was ever recorded)."""
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (schema.ADAPTERS_TABLE,)
        ).fetchone() is not None

    def add_adapter(self, meta: Mapping[str, Any], started: int, finished: int) -> AdapterRow:
        """Insert a round's row from its adapter's metadata (inside the caller's transaction) and return it.

        `started`: the sample at which the round began training; `finished`: the
        sample at which it is recorded (and the loop switches to it).
        """
        assert not self.readonly, "read-only archive"
        self.conn.execute(schema.ADAPTERS_DDL)
        values = {k: meta.get(k) for k in schema.ADAPTER_COLUMNS}
        values.update(started_sample=started, finished_sample=finished, created=time.time(),
                      loss_curve=json.dumps(list(meta.get("loss_curve", []))))
        self.conn.execute(
            f"INSERT INTO {schema.ADAPTERS_TABLE} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )
        return AdapterRow.from_sql(tuple(values.values()))

    def adapters(self) -> list[AdapterRow]:
        """Return the rounds, oldest first.

        None when the table does not exist, or is of another shape (some other
        tool's: `raw_adapters` shows it). A registry table from an older evoloop
        gives None for the columns it lacks.
        """
        have = schema.columns(self.conn, schema.ADAPTERS_TABLE)
        if not REGISTRY_COLUMNS <= have:
            return []
        picked = ", ".join(c if c in have else f"NULL AS {c}" for c in schema.ADAPTER_COLUMNS)
        rows = self.conn.execute(f"SELECT {picked} FROM {schema.ADAPTERS_TABLE} ORDER BY round")
        return [AdapterRow.from_sql(r) for r in rows]

    def latest_adapter(self) -> AdapterRow | None:
        """Return the last round recorded, if any."""
        rows = self.adapters()
        return rows[-1] if rows else None

    def is_registry_table(self) -> bool:
        """Tell whether the `adapters` table is the registry's (it has the columns the evidence needs)."""
        return REGISTRY_COLUMNS <= schema.columns(self.conn, schema.ADAPTERS_TABLE)

    def raw_adapters(self, limit: int = RAW_LIMIT) -> RawTable:
        """Return an `adapters` table of another shape as it is, newest row first."""
        cur = self.conn.execute(f"SELECT * FROM {schema.ADAPTERS_TABLE} ORDER BY rowid DESC LIMIT ?", (limit,))
        return RawTable(tuple(c[0] for c in cur.description), tuple(cur.fetchall()))

    def adapter_proposers(self) -> list[str]:
        """Return the proposers that wrote programs with a recorded adapter."""
        return [p for (p,) in self.conn.execute(
            f"SELECT DISTINCT proposer FROM programs WHERE adapter IN (SELECT path FROM {schema.ADAPTERS_TABLE})"
        )]

    def arm_figures(self, proposers: Sequence[str], adapter: str, lo: int, hi: int | None) -> ArmFigures:
        """Return the figures of the programs these proposers wrote with `adapter` ("": none) in samples [lo, hi)."""
        marks = ",".join("?" * len(proposers))
        window = "p.sample >= ?" + ("" if hi is None else " AND p.sample < ?")
        args: list[Any] = [*proposers, adapter or "", lo] + ([] if hi is None else [hi])
        n, valid, mean, best, beat = self.conn.execute(
            "SELECT COUNT(*), COUNT(p.score), AVG(p.score), MAX(p.score),"
            " SUM(p.score IS NOT NULL AND p.score > (SELECT MAX(q.score) FROM json_each(p.parents) j JOIN programs q ON q.id = j.value))"
            f" FROM programs p WHERE p.proposer IN ({marks}) AND COALESCE(p.adapter, '') = ? AND {window}",
            args,
        ).fetchone()
        return ArmFigures(n, valid / n if n else None, mean, best, (beat or 0) / n if n else None)
