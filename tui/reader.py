"""Read a run archive for the TUI: read-only, incrementally, one consistent snapshot per poll.

    reader = ArchiveReader.open(Path("runs/demo.db"))
    snap = reader.poll(island=None)        # first call: aggregates over indexes
    snap = reader.poll(island=3)           # later calls: only rows with id > the last seen

Every poll runs in one read transaction, so the header, the curves and the
tables agree with each other even while the loop commits. The header is
`evolve.session.status` itself. Programs are never deleted and ids only
grow, so "rows with id > the last seen" is exactly what changed, apart from
the `duplicates` counter, which the TUI does not show per program.

All methods may be called from worker threads; a lock serializes them on
the one connection.
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolve import session
from evolve.archive import Archive, ArchiveError
from evolve.spec import Spec
from finetune import registry
from tui.history import Curve, History, ResetMark, bucket_size_for

log = logging.getLogger(__name__)

Row = dict[str, Any]  # a programs row as `Archive` returns it (parents and scores decoded)
TOP_K = 50
LATEST_FAILURES = 30
LINEAGE_DEPTH = 40
ADAPTERS_TABLE = "adapters"  # written by finetune/ once it trains adapters; the TUI shows it when present


@dataclass(frozen=True)
class Snapshot:
    """What one poll saw; the UI renders it without touching the archive."""

    status: dict[str, Any]  # exactly `evolve status --json`
    island: int | None  # the filter this snapshot was read for
    curves: dict[int | None, Curve]  # best so far per island, and overall under None
    resets: tuple[ResetMark, ...]
    last_improvement: dict[int, int]  # island -> sample at which its current best arrived (or it was re-founded)
    failure_bins: list[int]  # first sample of each bin (for the island filter)
    failure_series: dict[str, list[int]]  # kind -> count per bin
    top: list[Row]  # best programs (of the island), best first
    latest_failures: list[Row]
    tables: frozenset[str]
    adapters: tuple[dict[str, Any], ...]  # rows of the `adapters` table (when there is one), newest first
    new_programs: int  # programs this poll added to the history
    read_s: float  # how long the poll took


@dataclass(frozen=True)
class ProgramDetail:
    """A program with what the browser shows about it."""

    row: Row
    metrics: dict[str, Any]
    parents: list[Row]
    diffs: dict[int, str]  # parent id -> unified diff of the evolved function
    lineage: list[Row] = field(default_factory=list)  # first parent's chain back to the seed


class ArchiveReader:
    """Incremental, read-only view of one archive."""

    def __init__(self, archive: Archive, spec: Spec, top_k: int = TOP_K) -> None:
        assert archive.readonly, "the TUI never writes the archive"
        self.archive, self.spec, self.top_k = archive, spec, top_k
        self.history: History | None = None
        self._last_id = 0
        self._last_event = 0
        self._origins: dict[tuple[str, str, str], list[Any]] = {}  # (proposer, model, adapter) -> [programs, valid, best]
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, top_k: int = TOP_K) -> ArchiveReader:
        """Open an archive read-only; raises ArchiveError (or SpecError) for a file that will not do."""
        archive = Archive.open(path, readonly=True)
        try:
            return cls(archive, session.spec_of(archive), top_k)
        except KeyError as exc:  # tables there, but no run record
            raise ArchiveError(f"{path} is not an evoloop archive (no {exc} in its run table)") from None

    def close(self) -> None:
        with self._lock:  # not under a worker's feet
            self.archive.close()

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Hold one read transaction (a consistent view) and the connection lock."""
        with self._lock:
            self.archive.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.archive.conn.execute("COMMIT")

    # -- polling -----------------------------------------------------------------------

    def poll(self, island: int | None = None) -> Snapshot:
        """Read what changed since the last poll and return the whole picture."""
        started = time.perf_counter()
        with self._snapshot():
            samples = self.archive.state().get("stats", {}).get("samples", 0)
            if self.history is None:
                new = self._load_history(samples)
            else:
                new = self._read_new()
                self.history.note_samples(samples)
            status = session.status(self.archive, self.spec, self._by_proposer())
            self._read_events()
            top = self.archive.top(self.top_k, island)
            improved = self._last_improvement(status["islands"])
            failures = self._latest_failures(island)
            tables = frozenset(r[0] for r in self.archive.conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
            adapters = self._adapters() if ADAPTERS_TABLE in tables else ()
            assert self.history is not None
            bins, series = self.history.failure_series(island)
            curves = {i: self.history.curve(i) for i in [None, *self.history.islands()]}
            resets = tuple(self.history.resets)
        return Snapshot(
            status=status, island=island, top=top, curves=curves,
            resets=resets, last_improvement=improved, failure_bins=bins, failure_series=series,
            latest_failures=failures, tables=tables, adapters=adapters, new_programs=new, read_s=time.perf_counter() - started,
        )

    def _load_history(self, samples: int) -> int:
        """Fill the history with a few aggregate queries over indexes (no pass over the rows in Python)."""
        conn = self.archive.conn
        self._last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM programs").fetchone()[0]
        history = History(bucket_size_for(samples))
        islands = list(range(self._num_islands()))
        # One index range per (island, bucket), all inside SQLite: a GROUP BY on `sample / B`
        # would sort every row instead (ten times slower on a million programs).
        rows = conn.execute(
            "WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < :last),"
            " isl(island) AS (SELECT value FROM json_each(:islands))"
            " SELECT isl.island, b.i, (SELECT MAX(score) FROM programs INDEXED BY programs_history"
            "   WHERE island = isl.island AND sample >= b.i * :size AND sample < (b.i + 1) * :size AND id <= :id)"
            " FROM isl CROSS JOIN b",
            {"last": samples // history.bucket, "islands": json.dumps(islands), "size": history.bucket, "id": self._last_id},
        ) if self._has_index("programs_history") else conn.execute(  # an archive from before the index
            "SELECT island, sample / :size, MAX(score) FROM programs WHERE island IS NOT NULL AND id <= :id GROUP BY 1, 2",
            {"size": history.bucket, "id": self._last_id},
        )
        for island, bucket, best in rows:
            if best is not None:
                history.add_best(island, bucket, best)
        seeds = "SELECT sample, score FROM programs WHERE island IS NULL AND score IS NOT NULL AND id <= ?"
        for sample, score in conn.execute(seeds, (self._last_id,)):
            history.add_best(None, sample // history.bucket, score)  # the seed, on every island
        for island, bucket, failure, count in conn.execute(  # over the partial index `programs_failed`
            "SELECT island, sample / ?, failure, COUNT(*) FROM programs WHERE failure IS NOT NULL AND id <= ? GROUP BY 1, 2, 3",
            (history.fail_bucket, self._last_id),
        ):
            history.add_failures(island, bucket, failure, count)
        history.last_sample = samples
        for row in session.archive_by_proposer(self.archive):  # over the `programs_origin` index
            key = (row["proposer"], row["model"], row["adapter"])
            self._origins[key] = [row["programs"], row["valid"], row["best_score"]]
        self.history = history
        return int(self._last_id)

    def _num_islands(self) -> int:
        return int(self.archive.run_info()["config"]["islands"]["num_islands"])

    def _has_index(self, name: str) -> bool:
        return self.archive.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone() is not None

    def _read_new(self) -> int:
        assert self.history is not None
        rows = self.archive.conn.execute(
            "SELECT id, island, sample, score, failure, proposer, model, adapter FROM programs WHERE id > ? ORDER BY id",
            (self._last_id,),
        ).fetchall()
        for pid, island, sample, score, failure, proposer, model, adapter in rows:
            self.history.add_program(island, sample, score, failure)
            origin = self._origins.setdefault((proposer, model or "", adapter or ""), [0, 0, None])
            origin[0] += 1
            if score is not None:
                origin[1] += 1
                origin[2] = score if origin[2] is None else max(origin[2], score)
            self._last_id = pid
        return len(rows)

    def _by_proposer(self) -> list[dict[str, Any]]:
        """Return `session.archive_by_proposer` as kept up to date from the rows read."""
        rows = sorted(self._origins.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [
            {"proposer": p, "model": m, "adapter": a, "programs": n, "valid": v, "best_score": b}
            for (p, m, a), (n, v, b) in rows
        ]

    def _read_events(self) -> None:
        assert self.history is not None
        rows = self.archive.conn.execute(
            "SELECT id, sample, data FROM events WHERE id > ? AND kind = 'reset' ORDER BY id", (self._last_event,)
        ).fetchall()
        last = self.archive.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        if rows:
            data = [(sample, json.loads(d)) for _, sample, d in rows]
            founders = self.archive.programs(sorted({d["founder"] for _, d in data}))
            for sample, d in data:
                founder = founders.get(d["founder"])
                self.history.add_reset(ResetMark(sample, d["island"], founder["score"] if founder else None))
        self._last_event = last

    def _last_improvement(self, islands: list[dict[str, Any]]) -> dict[int, int]:
        """Return, per island, the later of its best program's sample and its last reset (exact, unlike the curves)."""
        assert self.history is not None
        best = {r["island"]: r["best_program_id"] for r in islands if r["best_program_id"] is not None}
        samples = dict(self.archive.conn.execute(
            f"SELECT id, sample FROM programs WHERE id IN ({','.join('?' * len(best))})", list(best.values())
        ).fetchall()) if best else {}
        resets: dict[int, int] = {}
        for mark in self.history.resets:
            resets[mark.island] = max(mark.sample, resets.get(mark.island, 0))
        return {i: max(samples.get(pid, 0), resets.get(i, 0)) for i, pid in best.items()}

    def _latest_failures(self, island: int | None) -> list[Row]:
        """Return the newest failed programs, over the `programs_failed` partial index."""
        islands = [island] if island is not None else range(self._num_islands())
        rows: list[Row] = []
        for i in islands:  # one short index range per island, merged here
            rows += self.archive.conn.execute(
                "SELECT id, island, sample, failure, error FROM programs WHERE island = ? AND failure IS NOT NULL"
                " ORDER BY sample DESC, id DESC LIMIT ?", (i, LATEST_FAILURES),
            ).fetchall()
        rows.sort(reverse=True)
        keys = ("id", "island", "sample", "failure", "error")
        return [dict(zip(keys, r)) for r in rows[:LATEST_FAILURES]]

    def _adapters(self) -> tuple[dict[str, Any], ...]:
        columns = {r[1] for r in self.archive.conn.execute(f"PRAGMA table_info({ADAPTERS_TABLE})")}
        if {"finished_sample", "path"} <= columns:  # the registry's table: each round with its evidence
            return tuple(registry.shown_rows(self.archive.conn)[:100])
        cur = self.archive.conn.execute(f"SELECT * FROM {ADAPTERS_TABLE} ORDER BY rowid DESC LIMIT 100")
        names = [c[0] for c in cur.description]
        return tuple(dict(zip(names, r)) for r in cur)

    # -- one program -------------------------------------------------------------------

    def detail(self, program_id: int) -> ProgramDetail:
        """Return a program with its metrics, its parents, the diffs against them and its lineage."""
        with self._snapshot():
            row = self.archive.program(program_id)
            parents_by_id = self.archive.programs(row["parents"])
            lineage = self._lineage(row)
        parents = [parents_by_id[p] for p in row["parents"] if p in parents_by_id]
        diffs = {p["id"]: _diff(p, row) for p in parents}
        metrics = self.spec.metrics("train", row["scores"]) if row["score"] is not None else {}
        return ProgramDetail(row, metrics, parents, diffs, lineage)

    def _lineage(self, row: Row) -> list[Row]:
        """Follow the best parent (the last one in the prompt) back towards the seed."""
        chain: list[Row] = []
        current = row
        while current["parents"] and len(chain) < LINEAGE_DEPTH:
            parent = self.archive.programs([current["parents"][-1]]).get(current["parents"][-1])
            if parent is None:
                break
            chain.append(parent)
            current = parent
        return chain

    def export(self, program_id: int, path: Path) -> Path:
        """Write one program as a runnable file (the archive is only read)."""
        with self._snapshot():
            row = self.archive.program(program_id)
        return session.write_program(self.spec, row, path)


def _diff(parent: Row, child: Row) -> str:
    lines = difflib.unified_diff(
        parent["function"].splitlines(keepends=True), child["function"].splitlines(keepends=True),
        fromfile=f"program {parent['id']}", tofile=f"program {child['id']}",
    )
    return "".join(lines)
