"""Trusted check of a circle packing: imported only by the circle_packing spec's `@evolve.check`.

A packing is valid when every circle lies in the unit square and no two
overlap, each up to TOLERANCE: r <= x <= 1 - r and r <= y <= 1 - r, and
r_i + r_j <= |c_i - c_j| for every pair, all within 1e-9 (absolute).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TOLERANCE = 1e-9
# Best sums of radii known for n circles in the unit square (AlphaEvolve, 2025,
# Appendix B.12: 2.635 for n = 26, up from 2.634; 2.937 for n = 32, up from 2.936).
BEST_KNOWN = {26: 2.635, 32: 2.937}


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
    outside = np.maximum(radii[:, None] - centers, centers + radii[:, None] - 1.0).max(axis=1)
    if outside.max() > TOLERANCE:
        k = int(np.argmax(outside))
        raise ValueError(f"circle {k} sticks out of the unit square by {outside[k]:.3g}")
    i, j = np.triu_indices(n, k=1)
    overlap = radii[i] + radii[j] - np.hypot(*(centers[i] - centers[j]).T)
    if len(overlap) and overlap.max() > TOLERANCE:
        k = int(np.argmax(overlap))
        raise ValueError(f"circles {i[k]} and {j[k]} overlap by {overlap[k]:.3g}")
    return math.fsum(radii.tolist())
