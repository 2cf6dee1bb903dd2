"""The TUI's history: best-so-far curves with resets, failure bins, bucket merging."""

from __future__ import annotations

import pytest

from tui.history import MAX_BUCKETS, History, ResetMark, bucket_size_for


def corners(history: History, island: int | None) -> list[tuple[float, float]]:
    curve = history.curve(island)
    return list(zip(curve.xs, curve.ys))


def test_island_curve_rises_drops_at_a_reset_and_ends_at_the_last_sample() -> None:
    h = History()
    h.add_program(None, 0, -10.0, None)  # the seed: on every island
    h.add_program(0, 1, -8.0, None)
    h.add_program(1, 2, -9.0, None)
    h.add_program(0, 3, -9.5, None)  # not better: no corner
    h.add_reset(ResetMark(sample=4, island=0, score=-9.0))  # re-founded with island 1's best
    h.add_program(0, 5, -7.0, None)
    h.add_program(1, 6, None, "timeout")
    assert corners(h, 0) == [(0, -10.0), (1, -10.0), (1, -8.0), (4, -8.0), (4, -9.0), (5, -9.0), (5, -7.0), (6, -7.0)]
    assert h.curve(0).last_improvement == 5
    assert corners(h, 1) == [(0, -10.0), (2, -10.0), (2, -9.0), (6, -9.0)]
    overall = corners(h, None)
    assert overall[-1] == (6, -7.0) and all(b[1] >= a[1] for a, b in zip(overall, overall[1:]))  # never drops


def test_failures_by_kind_in_bins() -> None:
    h = History()
    for sample, kind in [(0, "error"), (1, "error"), (40, "timeout"), (41, "error")]:
        h.add_program(2, sample, None, kind)
    h.add_program(3, 42, None, "error")
    bins, series = h.failure_series(island=None)
    assert bins[0] == 0 and bins[1] - bins[0] == h.fail_bucket
    assert sum(series["error"]) == 4 and sum(series["timeout"]) == 1
    assert series["error"][0] == 2
    assert h.failure_totals(2) == {"error": 3, "timeout": 1}
    _, only_3 = h.failure_series(island=3)
    assert only_3 == {"error": [0, 0, 1]}


def test_buckets_merge_when_the_run_grows() -> None:
    h = History()
    for sample in range(3 * MAX_BUCKETS):
        h.add_program(sample % 3, sample, -1000.0 + sample, "error" if sample % 7 == 0 else None)
    assert h.bucket == 4 and h.fail_bucket == 4 * 16
    curve = h.curve(None)
    assert len(curve.xs) <= 2 * MAX_BUCKETS + 1
    assert curve.ys[-1] == -1000.0 + 3 * MAX_BUCKETS - 1  # the best survives merging
    assert sum(sum(c) for c in h.failure_series(None)[1].values()) == len(range(0, 3 * MAX_BUCKETS, 7))


@pytest.mark.parametrize(("samples", "size"), [(0, 1), (499, 1), (500, 2), (1_000_000, 2048)])
def test_bucket_size_keeps_half_the_buckets(samples: int, size: int) -> None:
    assert bucket_size_for(samples) == size
    assert samples // size < MAX_BUCKETS // 2


def test_empty_history_has_empty_curves() -> None:
    curve = History().curve(None)
    assert curve.xs == () and curve.last_improvement is None
    assert History().failure_series(None)[1] == {}
