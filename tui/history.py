"""Best score and failures over samples, kept in sample buckets and grown incrementally.

A run of a million samples cannot be plotted point by point, and the TUI
must not reread the programs table on every refresh. So the history holds,
per island, the best score in each bucket of `bucket` samples and, per
island and failure kind, the count in each bucket of `fail_bucket` samples
(coarser: failures are only drawn as ~40 bars). The first load fills it from
aggregate queries over indexes; later refreshes add only the new rows. When
the buckets grow past `MAX_BUCKETS`, both sizes double and neighbours merge
(a bucket size is always a power of two).

Curves are step functions: an island's best so far, restarting from the
founder's score at each reset; the overall best never drops. With a bucket
of one sample (runs up to `MAX_BUCKETS // 2` samples at first load) they are
exact; otherwise a point is placed at the start of its bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_BUCKETS = 1000
FAIL_FACTOR = 16  # a failure bucket spans this many score buckets
Island = int | None  # None: the seed program, registered on every island


@dataclass(frozen=True)
class ResetMark:
    """An island re-founded at `sample` with a program scoring `score`."""

    sample: int
    island: int
    score: float | None


@dataclass(frozen=True)
class Curve:
    """A best-so-far step curve: corners as parallel lists, ending at the last sample."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    last_improvement: int | None  # sample of the last rise (or reset), None while empty


def bucket_size_for(samples: int) -> int:
    """Return the power-of-two bucket that keeps `samples` within half of MAX_BUCKETS."""
    size = 1
    while samples // size >= MAX_BUCKETS // 2:
        size *= 2
    return size


class History:
    """Per-island best scores and failure counts by sample bucket."""

    def __init__(self, bucket: int = 1) -> None:
        assert bucket >= 1 and bucket & (bucket - 1) == 0, "bucket sizes are powers of two"
        self.bucket = bucket
        self.fail_bucket = bucket * FAIL_FACTOR
        self.last_sample = 0  # samples drawn so far: where the curves end
        self._best: dict[Island, dict[int, float]] = {}  # island -> bucket -> best score
        self._failures: dict[tuple[Island, str], dict[int, int]] = {}  # (island, kind) -> bucket -> count
        self.resets: list[ResetMark] = []

    # -- adding --------------------------------------------------------------------

    def add_best(self, island: Island, bucket: int, score: float) -> None:
        """Add the best score of some programs in one bucket (of `self.bucket` samples)."""
        scores = self._best.setdefault(island, {})
        scores[bucket] = max(score, scores.get(bucket, -math.inf))

    def add_failures(self, island: Island, fail_bucket: int, kind: str, count: int) -> None:
        """Add `count` failures in one failure bucket (of `self.fail_bucket` samples)."""
        counts = self._failures.setdefault((island, kind), {})
        counts[fail_bucket] = counts.get(fail_bucket, 0) + count

    def add_program(self, island: Island, sample: int, score: float | None, failure: str | None) -> None:
        """Add one program as it comes from the archive."""
        self.note_samples(sample)
        if failure is not None:
            self.add_failures(island, sample // self.fail_bucket, failure, 1)
        elif score is not None:
            self.add_best(island, sample // self.bucket, score)

    def add_reset(self, mark: ResetMark) -> None:
        self.resets.append(mark)
        self.note_samples(mark.sample)

    def note_samples(self, samples: int) -> None:
        """Extend the history to `samples` samples (merging buckets if there are too many)."""
        self.last_sample = max(self.last_sample, samples)
        self._coarsen()

    def _coarsen(self) -> None:
        while self.last_sample // self.bucket >= MAX_BUCKETS:
            self.bucket *= 2
            self.fail_bucket *= 2
            for island, scores in self._best.items():
                merged: dict[int, float] = {}
                for b, s in scores.items():
                    merged[b // 2] = max(s, merged.get(b // 2, -math.inf))
                self._best[island] = merged
            for key, counts in self._failures.items():
                summed: dict[int, int] = {}
                for b, c in counts.items():
                    summed[b // 2] = summed.get(b // 2, 0) + c
                self._failures[key] = summed

    # -- reading ------------------------------------------------------------------------

    def islands(self) -> list[int]:
        return sorted({i for i in self._best if i is not None} | {m.island for m in self.resets})

    def curve(self, island: Island) -> Curve:
        """Return the best-so-far curve of one island, or overall for None."""
        if island is None:
            buckets = _merge_max(self._best.values())
            resets: list[ResetMark] = []
        else:
            buckets = _merge_max([self._best.get(None, {}), self._best.get(island, {})])
            resets = sorted((m for m in self.resets if m.island == island), key=lambda m: m.sample)
        return _step_curve(buckets, resets, self.bucket, self.last_sample)

    def failure_series(self, island: Island, bins: int = 40) -> tuple[list[int], dict[str, list[int]]]:
        """Return bin starts (samples) and, per failure kind, counts per bin (for one island or all).

        A bin is a round number (1, 2 or 5 times a power of ten) of failure buckets, at most `bins` of them.
        """
        kinds = sorted({kind for (_, kind) in self._failures})
        per_bin = _round_up(math.ceil((self.last_sample // self.fail_bucket + 1) / bins))
        width = per_bin * self.fail_bucket
        n = max(1, math.ceil(self.last_sample / width))
        series: dict[str, list[int]] = {}
        for kind in kinds:
            counts = [0] * n
            for (isl, k), by_bucket in self._failures.items():
                if k != kind or (island is not None and isl != island):
                    continue
                for b, c in by_bucket.items():
                    counts[min(n - 1, b // per_bin)] += c
            if any(counts):
                series[kind] = counts
        return [i * width for i in range(n)], series

    def failure_totals(self, island: Island) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (isl, kind), counts in self._failures.items():
            if island is None or isl == island:
                totals[kind] = totals.get(kind, 0) + sum(counts.values())
        return totals


def _round_up(n: int) -> int:
    """Return the smallest of 1, 2, 5, 10, 20, 50, ... that is >= n."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= n:
                return step * scale
        scale *= 10


def _merge_max(maps: Iterable[Mapping[int, float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for m in maps:
        for b, s in m.items():
            out[b] = max(s, out.get(b, -math.inf))
    return out


def _step_curve(buckets: Mapping[int, float], resets: list[ResetMark], size: int, end: int) -> Curve:
    """Walk buckets in order, raising the best; a reset after bucket (sample - 1) // size restarts it."""
    xs: list[float] = []
    ys: list[float] = []
    best = -math.inf
    last: int | None = None
    pending = list(resets)

    def step(x: int, y: float) -> None:
        if xs and math.isfinite(ys[-1]):
            xs.append(x)
            ys.append(ys[-1])  # the corner: hold the old best up to x
        xs.append(x)
        ys.append(y)

    for b in sorted(buckets):
        while pending and (pending[0].sample - 1) // size < b:
            mark = pending.pop(0)
            if mark.score is not None:
                best = mark.score
                step(mark.sample, best)
                last = mark.sample
        if buckets[b] > best:
            best = buckets[b]
            step(b * size, best)
            last = b * size
    for mark in pending:
        if mark.score is not None:
            best = mark.score
            step(mark.sample, best)
            last = mark.sample
    if xs and end > xs[-1]:
        xs.append(end)
        ys.append(ys[-1])
    return Curve(tuple(xs), tuple(ys), last)
