"""Read a run archive for the TUI: read-only, incrementally, one consistent snapshot per poll.

    reader = ArchiveReader.open(Path("runs/demo.db"))
    snap = reader.poll(island=None)        # first call: aggregates over indexes
    snap = reader.poll(island=3)           # later calls: only rows with id > the last seen

Every poll runs in one read transaction, so the header, the curves and the
tables agree with each other even while the loop commits. The header is
`evolve.status.read_status` itself. Programs are never deleted and ids only
grow, so "rows with id > the last seen" is exactly what changed, apart from
the `duplicates` counter, which the TUI does not show per program. Every
query is the archive's (`evolve.archive`); this module decides what to ask.

All methods may be called from worker threads; a lock serializes them on
the one connection.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolve import session
from evolve.archive import ADAPTERS_TABLE, Archive, ArchiveError, FailureRow, OriginCount, ProgramRow, RawTable
from evolve.recorded import recorded_spec
from evolve.spec import Spec
from evolve.status import IslandRow, Status, read_status
from finetune import registry
from tui.history import Curve, History, ResetMark, bucket_size_for

log = logging.getLogger(__name__)

TOP_K = 50
LATEST_FAILURES = 30
LINEAGE_DEPTH = 40
NO_ADAPTERS = RawTable((), ())
Origin = tuple[str, str, str]  # proposer, model, adapter


@dataclass(frozen=True)
class Snapshot:
    """What one poll saw; the UI renders it without touching the archive."""

    status: Status  # what `evolve status` says
    island: int | None  # the filter this snapshot was read for
    curves: dict[int | None, Curve]  # best so far per island, and overall under None
    resets: tuple[ResetMark, ...]
    last_improvement: dict[int, int]  # island -> sample at which its current best arrived (or it was re-founded)
    failure_bins: list[int]  # first sample of each bin (for the island filter)
    failure_series: dict[str, list[int]]  # kind -> count per bin
    top: tuple[ProgramRow, ...]  # best programs (of the island), best first
    latest_failures: tuple[FailureRow, ...]  # newest first
    tables: frozenset[str]
    adapters: RawTable  # the `adapters` table (when there is one), newest round first, with each round's evidence
    new_programs: int  # programs this poll added to the history
    read_s: float  # how long the poll took


@dataclass(frozen=True)
class ProgramDetail:
    """A program with what the browser shows about it."""

    row: ProgramRow
    metrics: dict[str, Any]
    parents: list[ProgramRow]
    diffs: dict[int, str]  # parent id -> unified diff of the evolved function
    lineage: list[ProgramRow] = field(default_factory=list)  # best parent's chain back to the seed


class ArchiveReader:
    """Incremental, read-only view of one archive."""

    def __init__(self, archive: Archive, spec: Spec, top_k: int = TOP_K) -> None:
        assert archive.readonly, "the TUI never writes the archive"
        self.archive, self.spec, self.top_k = archive, spec, top_k
        self.history: History | None = None
        self._last_id = 0
        self._last_event = 0
        self._origins: dict[Origin, list[Any]] = {}  # -> [programs, valid, best score]
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, top_k: int = TOP_K) -> ArchiveReader:
        """Open an archive read-only; raises ArchiveError (or SpecError) for a file that will not do."""
        archive = Archive.open(path, readonly=True)
        try:
            return cls(archive, recorded_spec(archive), top_k)
        except KeyError as exc:  # tables there, but no run record
            raise ArchiveError(f"{path} is not an evoloop archive (no {exc} in its run table)") from None

    def close(self) -> None:
        with self._lock:  # not under a worker's feet
            self.archive.close()

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Hold one read transaction (a consistent view) and the connection lock."""
        with self._lock, self.archive.snapshot():
            yield

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
            status = read_status(self.archive, self.spec, self._by_proposer())
            self._read_events()
            top = tuple(self.archive.top(self.top_k, island))
            improved = self._last_improvement(status.islands)
            failures = self._latest_failures(island)
            tables = self.archive.tables()
            adapters = self._adapters() if ADAPTERS_TABLE in tables else NO_ADAPTERS
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
        archive = self.archive
        self._last_id = archive.last_program_id()
        history = History(bucket_size_for(samples))
        islands = list(range(self._num_islands()))
        for island, bucket, best in archive.best_by_bucket(islands, history.bucket, samples // history.bucket, self._last_id):
            if best is not None:
                history.add_best(island, bucket, best)
        for sample, score in archive.seed_scores(self._last_id):
            history.add_best(None, sample // history.bucket, score)  # the seed, on every island
        for island, bucket, failure, count in archive.failure_counts(history.fail_bucket, self._last_id):
            history.add_failures(island, bucket, failure, count)
        history.last_sample = samples
        for row in archive.by_proposer():  # over the `programs_origin` index
            self._origins[(row.proposer, row.model, row.adapter)] = [row.programs, row.valid, row.best_score]
        self.history = history
        return self._last_id

    def _num_islands(self) -> int:
        return int(self.archive.run_info()["config"]["islands"]["num_islands"])

    def _read_new(self) -> int:
        assert self.history is not None
        rows = self.archive.programs_after(self._last_id)
        for pid, island, sample, score, failure, proposer, model, adapter in rows:
            self.history.add_program(island, sample, score, failure)
            origin = self._origins.setdefault((proposer, model, adapter), [0, 0, None])
            origin[0] += 1
            if score is not None:
                origin[1] += 1
                origin[2] = score if origin[2] is None else max(origin[2], score)
            self._last_id = pid
        return len(rows)

    def _by_proposer(self) -> list[OriginCount]:
        """Return `Archive.by_proposer` as kept up to date from the rows read."""
        rows = sorted(self._origins.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [OriginCount(p, m, a, n, v, b) for (p, m, a), (n, v, b) in rows]

    def _read_events(self) -> None:
        assert self.history is not None
        resets = self.archive.events_after(self._last_event, "reset")
        last = self.archive.last_event_id()
        if resets:
            founders = self.archive.programs(sorted({e.data["founder"] for e in resets}))
            for event in resets:
                founder = founders.get(event.data["founder"])
                self.history.add_reset(ResetMark(event.sample, event.data["island"], founder.score if founder else None))
        self._last_event = last

    def _last_improvement(self, islands: tuple[IslandRow, ...]) -> dict[int, int]:
        """Return, per island, the later of its best program's sample and its last reset (exact, unlike the curves)."""
        assert self.history is not None
        best = {r.island: r.best_program_id for r in islands if r.best_program_id is not None}
        samples = self.archive.samples_of(list(best.values()))
        resets: dict[int, int] = {}
        for mark in self.history.resets:
            resets[mark.island] = max(mark.sample, resets.get(mark.island, 0))
        return {i: max(samples.get(pid, 0), resets.get(i, 0)) for i, pid in best.items()}

    def _latest_failures(self, island: int | None) -> tuple[FailureRow, ...]:
        """Return the newest failed programs, over the `programs_failed` partial index."""
        islands = [island] if island is not None else list(range(self._num_islands()))
        return tuple(self.archive.latest_failures(islands, LATEST_FAILURES))

    def _adapters(self) -> RawTable:
        if self.archive.is_registry_table():  # the registry's table: each round with its evidence
            return registry.shown_table(self.archive)
        return self.archive.raw_adapters()  # another shape: shown as it is

    # -- one program -------------------------------------------------------------------

    def detail(self, program_id: int) -> ProgramDetail:
        """Return a program with its metrics, its parents, the diffs against them and its lineage."""
        with self._snapshot():
            row = self.archive.program(program_id)
            parents_by_id = self.archive.programs(row.parents)
            lineage = self._lineage(row)
        parents = [parents_by_id[p] for p in row.parents if p in parents_by_id]
        diffs = {p.id: _diff(p, row) for p in parents}
        metrics = self.spec.metrics("train", row.scores) if row.score is not None else {}
        return ProgramDetail(row, metrics, parents, diffs, lineage)

    def _lineage(self, row: ProgramRow) -> list[ProgramRow]:
        """Follow the best parent (the last one in the prompt) back towards the seed."""
        chain: list[ProgramRow] = []
        current = row
        while current.parents and len(chain) < LINEAGE_DEPTH:
            parent = self.archive.programs([current.parents[-1]]).get(current.parents[-1])
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


def _diff(parent: ProgramRow, child: ProgramRow) -> str:
    lines = difflib.unified_diff(
        parent.function.splitlines(keepends=True), child.function.splitlines(keepends=True),
        fromfile=f"program {parent.id}", tofile=f"program {child.id}",
    )
    return "".join(lines)
