"""What status and the TUI aggregate: events, best scores per bucket of samples, failures, new rows.

A mixin of `Archive`. The TUI's first load must not pass over a million
rows in Python, so each query here is an aggregate or an index range that
SQLite answers from the indexes of `schema.SCHEMA`; later polls read only
the rows with an id above the last one seen (ids only grow).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from evolve.archive import schema
from evolve.archive.records import BucketBest, Event, FailureCount, FailureRow, ProgramBrief, SeedScore


class RunQueries:
    """Reads of events and of aggregates over programs."""

    conn: sqlite3.Connection

    # -- events ----------------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[Event]:
        """Return the events (of one kind), oldest first."""
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        return self._events(where, args)

    def events_after(self, event_id: int, kind: str) -> list[Event]:
        """Return the events of one kind with an id above `event_id`, oldest first."""
        return self._events("WHERE id > ? AND kind = ?", (event_id, kind))

    def last_event(self) -> Event | None:
        rows = self._events("ORDER BY id DESC LIMIT 1", (), order=False)
        return rows[0] if rows else None

    def last_event_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def _events(self, where: str, args: Sequence[object], order: bool = True) -> list[Event]:
        rows = self.conn.execute(f"SELECT id, time, sample, kind, data FROM events {where}" + (" ORDER BY id" if order else ""),
                                 tuple(args))
        return [Event(i, t, s, k, json.loads(d or "{}")) for i, t, s, k, d in rows]

    # -- the TUI's history ----------------------------------------------------------------

    def best_by_bucket(self, islands: Sequence[int], bucket: int, last_bucket: int, until_id: int) -> list[BucketBest]:
        """Return each island's best valid score per bucket of `bucket` samples, up to `last_bucket` and program `until_id`.

        With the `programs_history` index: one index range per (island, bucket), all
        inside SQLite (a GROUP BY on `sample / bucket` would sort every row instead,
        ten times slower on a million programs); every pair comes back, best None
        where nothing was valid. Without it (an archive from before): the GROUP BY,
        only the buckets that have a valid program.
        """
        if not schema.has_index(self.conn, schema.HISTORY_INDEX):
            rows = self.conn.execute(
                "SELECT island, sample / :size, MAX(score) FROM programs WHERE island IS NOT NULL AND id <= :id GROUP BY 1, 2",
                {"size": bucket, "id": until_id},
            )
            return list(map(BucketBest._make, rows))
        rows = self.conn.execute(
            "WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < :last),"
            " isl(island) AS (SELECT value FROM json_each(:islands))"
            f" SELECT isl.island, b.i, (SELECT MAX(score) FROM programs INDEXED BY {schema.HISTORY_INDEX}"
            "   WHERE island = isl.island AND sample >= b.i * :size AND sample < (b.i + 1) * :size AND id <= :id)"
            " FROM isl CROSS JOIN b",
            {"last": last_bucket, "islands": json.dumps(list(islands)), "size": bucket, "id": until_id},
        )
        return list(map(BucketBest._make, rows))

    def seed_scores(self, until_id: int) -> list[SeedScore]:
        """Return the valid programs on no island (the seed) up to program `until_id`."""
        rows = self.conn.execute(
            "SELECT sample, score FROM programs WHERE island IS NULL AND score IS NOT NULL AND id <= ?", (until_id,)
        )
        return list(map(SeedScore._make, rows))

    def failure_counts(self, bucket: int, until_id: int) -> list[FailureCount]:
        """Count failed programs per island, bucket of `bucket` samples and kind (over the partial index `programs_failed`)."""
        rows = self.conn.execute(
            "SELECT island, sample / ?, failure, COUNT(*) FROM programs WHERE failure IS NOT NULL AND id <= ? GROUP BY 1, 2, 3",
            (bucket, until_id),
        )
        return list(map(FailureCount._make, rows))

    def programs_after(self, program_id: int) -> list[ProgramBrief]:
        """Return the programs with an id above `program_id`, in id order: what a poll has not seen yet."""
        rows = self.conn.execute(
            "SELECT id, island, sample, score, failure, proposer, COALESCE(model, ''), COALESCE(adapter, '')"
            " FROM programs WHERE id > ? ORDER BY id",
            (program_id,),
        )
        return list(map(ProgramBrief._make, rows))

    def samples_of(self, ids: Sequence[int]) -> dict[int, int]:
        """Return the sample at which each of these programs was proposed (a few ids: islands' bests)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.conn.execute(f"SELECT id, sample FROM programs WHERE id IN ({marks})", list(ids)).fetchall())

    def latest_failures(self, islands: Sequence[int], limit: int) -> list[FailureRow]:
        """Return the newest failed programs of these islands, newest first (one short index range per island)."""
        rows: list[tuple[int, int | None, int, str, str]] = []
        for island in islands:
            rows += self.conn.execute(
                "SELECT id, island, sample, failure, COALESCE(error, '') FROM programs WHERE island = ? AND failure IS NOT NULL"
                " ORDER BY sample DESC, id DESC LIMIT ?", (island, limit),
            ).fetchall()
        rows.sort(reverse=True)
        return [FailureRow._make(r) for r in rows[:limit]]
