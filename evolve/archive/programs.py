"""Reading programs: one, some, the best, and totals over the `programs` table.

A mixin of `Archive` (it needs the connection and the SELECT of whole rows
that `Archive` prepares for the file's columns).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolve.archive.errors import ArchiveError
from evolve.archive.records import Counts, NodeCount, OriginCount, ProgramRow, TableSizes

CHUNK = 500  # ids bound per statement: SQLite caps the number of bound parameters


class ProgramReads:
    """Reads of the `programs` table."""

    conn: sqlite3.Connection
    path: Path
    _program_columns: frozenset[str]  # the columns this file's programs table has
    _program_sql: str  # "SELECT <every ProgramRow column> FROM programs"

    def find_hash(self, program_hash: str) -> int | None:
        """Return the id of the program with this normalized hash, if any (uses the unique index)."""
        row = self.conn.execute("SELECT id FROM programs WHERE hash = ?", (program_hash,)).fetchone()
        return row[0] if row else None

    def hashes(self) -> dict[str, int]:
        """Return every program's hash and id."""
        return dict(self.conn.execute("SELECT hash, id FROM programs"))

    def program(self, program_id: int) -> ProgramRow:
        """Return one program; ArchiveError if there is none with this id."""
        rows = self._select("WHERE id = ?", (program_id,))
        if not rows:
            raise ArchiveError(f"{self.path}: no program {program_id}")
        return rows[0]

    def programs(self, ids: Sequence[int]) -> dict[int, ProgramRow]:
        """Return the programs with these ids (those that exist), by id."""
        out: dict[int, ProgramRow] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            out.update({r.id: r for r in self._select(f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)})
        return out

    def top(self, k: int, island: int | None = None) -> list[ProgramRow]:
        """Return the k best valid programs, best first (ties: the earliest).

        With `island`: those proposed on it, and the seed (registered on every island).
        """
        if island is not None:
            rows = self._select("WHERE island = ? AND score IS NOT NULL ORDER BY score DESC, id ASC LIMIT ?", (island, k))
            rows += self._select("WHERE island IS NULL AND score IS NOT NULL", ())
            return sorted(rows, key=lambda r: (-(r.score or 0.0), r.id))[:k]
        return self._select("WHERE score IS NOT NULL ORDER BY score DESC, id ASC LIMIT ?", (k,))

    def best_until(self, sample: int) -> ProgramRow | None:
        """Return the best valid program proposed at or before `sample` (the first to reach its score)."""
        rows = self._select("WHERE score IS NOT NULL AND sample <= ? ORDER BY score DESC, id ASC LIMIT 1", (sample,))
        return rows[0] if rows else None

    def best_recorded_by(self, when: float) -> ProgramRow | None:
        """Return the best valid program recorded at or before Unix time `when` (the first to reach its score)."""
        rows = self._select("WHERE score IS NOT NULL AND created <= ? ORDER BY score DESC, id ASC LIMIT 1", (when,))
        return rows[0] if rows else None

    def samples_recorded_by(self, when: float) -> int:
        """Return how many samples had been drawn when the last program recorded by Unix time `when` was."""
        row = self.conn.execute("SELECT MAX(sample) FROM programs WHERE created <= ?", (when,)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def written_by(self, proposer: str) -> list[ProgramRow]:
        """Return every program a proposer wrote, in id order."""
        return self._select("WHERE proposer = ? ORDER BY id", (proposer,))

    def children(self) -> list[ProgramRow]:
        """Return every program that has parents (all but the seed), in id order: the answers to prompts."""
        return self._select("WHERE parents != '[]' ORDER BY id", ())

    def count_valid(self, lo: int, hi: int | None = None) -> int:
        """Count the valid programs of samples [lo, hi) (hi None: to the end)."""
        where, args = _window(lo, hi)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM programs WHERE score IS NOT NULL AND {where}", args).fetchone()[0])

    def window_best(self, lo: int, hi: int | None, keep: int) -> list[ProgramRow]:
        """Return the valid programs of samples [lo, hi) scoring at least the `keep`-th best of them (ties all kept)."""
        where, args = _window(lo, hi)
        row = self.conn.execute(
            f"SELECT score FROM programs WHERE score IS NOT NULL AND {where} ORDER BY score DESC LIMIT 1 OFFSET ?",
            [*args, keep - 1],
        ).fetchone()
        if row is None:
            return []
        return self._select(f"WHERE score IS NOT NULL AND score >= ? AND {where}", [row[0], *args])

    def counts(self) -> Counts:
        """Return totals over the programs table: all, valid, duplicates, failures by kind."""
        total, valid, dups = self.conn.execute(
            "SELECT COUNT(*), COUNT(score), COALESCE(SUM(duplicates), 0) FROM programs"
        ).fetchone()
        failures = dict(self.conn.execute("SELECT failure, COUNT(*) FROM programs WHERE failure IS NOT NULL GROUP BY failure"))
        return Counts(total, valid, dups, failures)

    def by_proposer(self) -> list[OriginCount]:
        """Count the programs and valid ones per proposer, model and adapter, most programs first (over an index)."""
        rows = self.conn.execute(
            "SELECT proposer, model, adapter, COUNT(*), COUNT(score), MAX(score) FROM programs"
            " GROUP BY proposer, model, adapter ORDER BY COUNT(*) DESC"
        )
        return [OriginCount(p, m or "", a or "", n, v, b) for p, m, a, n, v, b in rows]

    def by_node(self) -> list[NodeCount]:
        """Count programs and valid ones per Ray node that evaluated them ([] for a local run, or an archive from before)."""
        if "node" not in self._program_columns:
            return []
        rows = self.conn.execute(
            "SELECT node, COUNT(*), COUNT(score) FROM programs WHERE node IS NOT NULL GROUP BY node ORDER BY node"
        )
        return [NodeCount(node, n, valid) for node, n, valid in rows]

    def next_sample(self) -> int:
        """Return the first sample index that no recorded program has (0 for an empty archive)."""
        return int(self.conn.execute("SELECT COALESCE(MAX(sample), -1) + 1 FROM programs").fetchone()[0])

    def last_program_id(self) -> int:
        """Return the largest program id (0 for an empty archive): ids only grow, programs are never deleted."""
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM programs").fetchone()[0])

    def sizes(self) -> TableSizes:
        """Count the rows of the programs, membership and events tables."""
        (programs,) = self.conn.execute("SELECT COUNT(*) FROM programs").fetchone()
        (members,) = self.conn.execute("SELECT COUNT(*) FROM membership").fetchone()
        (events,) = self.conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return TableSizes(programs, members, events)

    def _select(self, where: str, args: Sequence[Any]) -> list[ProgramRow]:
        return [ProgramRow.from_sql(r) for r in self.conn.execute(f"{self._program_sql} {where}", tuple(args))]


def _window(lo: int, hi: int | None) -> tuple[str, list[int]]:
    """Return the WHERE clause and arguments of samples [lo, hi) (hi None: to the end)."""
    return ("sample >= ?", [lo]) if hi is None else ("sample >= ? AND sample < ?", [lo, hi])
