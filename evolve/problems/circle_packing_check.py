"""Trusted check of a circle packing: imported only by the circle_packing spec's `@evolve.check`.

A packing is valid when every circle lies in the closed unit square and no
two overlap, exactly, with no tolerance: r <= x <= 1 - r, r <= y <= 1 - r
and r_i + r_j <= |c_i - c_j| for every pair, decided in exact rational
arithmetic on the floats given (touching is allowed). A tolerance is where
false records hide: with 1e-9 of slack, a packing whose circles overlap by
9e-10 each scores more than any valid one. Floating point screens the
pairs; only those within 1e-6 of touching are decided exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

TOLERANCE = 0.0  # no slack: containment and overlap are decided exactly
_SCREEN = 1e-6  # pairs and walls closer than this (in floating point) are decided in exact arithmetic
# Best sums of radii known for n circles in the unit square (AlphaEvolve, 2025,
# Appendix B.12: 2.635 for n = 26, up from 2.634; 2.937 for n = 32, up from 2.936).
BEST_KNOWN = {26: 2.635, 32: 2.937}


def _sticks_out(x: float, r: float) -> Fraction:
    """How far a circle of radius r at coordinate x passes a wall of [0, 1], exactly (<= 0: inside)."""
    fx, fr = Fraction(x), Fraction(r)
    return max(fr - fx, fx + fr - 1)


def _overlap(ci: np.ndarray, cj: np.ndarray, ri: float, rj: float) -> Fraction | None:
    """Return (r_i + r_j)^2 - |c_i - c_j|^2 over 2 (r_i + r_j) if the circles overlap, exactly; else None."""
    total = Fraction(ri) + Fraction(rj)
    d2 = sum((Fraction(float(a)) - Fraction(float(b))) ** 2 for a, b in zip(ci, cj))
    if total * total <= d2:
        return None
    return (total * total - d2) / (2 * total)  # the overlap, to first order


def sum_of_radii(n: int, output: Any) -> float:
    """Return the sum of radii if `output` is a valid packing of n circles; raise ValueError saying why not."""
    if not isinstance(output, dict) or set(output) != {"centers", "radii"}:
        raise ValueError("expected {'centers': [[x, y], ...], 'radii': [r, ...]}")
    try:
        centers = np.array(output["centers"], dtype=np.float64)
        radii = np.array(output["radii"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"centers and radii must be numbers: {exc}") from None
    if centers.shape != (n, 2) or radii.shape != (n,):
        raise ValueError(f"expected {n} centers (x, y) and {n} radii, got shapes {centers.shape} and {radii.shape}")
    if not (np.isfinite(centers).all() and np.isfinite(radii).all()):
        raise ValueError("centers and radii must be finite")
    if (radii < 0).any():
        raise ValueError(f"circle {int(np.argmin(radii))} has a negative radius")
    outside = np.maximum(radii[:, None] - centers, centers + radii[:, None] - 1.0)  # (n, 2), floating point
    past = {int(k): _sticks_out(float(centers[k, axis]), float(radii[k]))
            for k, axis in zip(*np.nonzero(outside > -_SCREEN))}
    if past and max(past.values()) > 0:
        k = max(past, key=past.__getitem__)
        raise ValueError(f"circle {k} sticks out of the unit square by {float(past[k]):.3g}")
    i, j = np.triu_indices(n, k=1)
    slack = np.hypot(*(centers[i] - centers[j]).T) - (radii[i] + radii[j])
    overlaps = {int(k): o for k in np.flatnonzero(slack < _SCREEN)
                if (o := _overlap(centers[i[k]], centers[j[k]], float(radii[i[k]]), float(radii[j[k]]))) is not None}
    if overlaps:
        k = max(overlaps, key=overlaps.__getitem__)
        raise ValueError(f"circles {i[k]} and {j[k]} overlap by {float(overlaps[k]):.3g}")
    return math.fsum(radii.tolist())
