"""Trusted check of a cap set: imported only by the cap_set spec's `@evolve.check`.

A cap set in Z_3^n is a set of vectors with no three distinct ones on a
line; over Z_3 that means no distinct a, b, c with a + b + c = 0 (mod 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Largest cap sets known in Z_3^n (n = 1..6 are proven maximal; n = 7 by
# Edel; n = 8 is FunSearch's 512, up from 496; n = 9 is 1082, which FunSearch matched), for the metrics.
BEST_KNOWN = {1: 2, 2: 4, 3: 9, 4: 20, 5: 45, 6: 112, 7: 236, 8: 512, 9: 1082}


def cap_set_size(n: int, output: Any) -> int:
    """Return the size of `output` if it is a cap set in Z_3^n; raise ValueError saying why not."""
    vectors = np.asarray(output if len(output) else np.empty((0, n)), dtype=object)
    if vectors.ndim != 2 or vectors.shape[1] != n:
        raise ValueError(f"expected a list of vectors of length {n}, got shape {vectors.shape}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2 for v in vectors.flat):
        raise ValueError("entries must be the integers 0, 1 or 2")
    vectors = vectors.astype(np.int64)
    index = vectors @ (3 ** np.arange(n - 1, -1, -1))  # each vector's number in base 3
    if len(np.unique(index)) != len(index):
        raise ValueError("the vectors are not distinct")
    # For each pair a != b, the third point of their line is c = -(a + b) mod 3 (distinct from both).
    members = np.zeros(3**n, dtype=bool)
    members[index] = True
    i, j = np.triu_indices(len(vectors), k=1)
    third = ((-(vectors[i] + vectors[j])) % 3) @ (3 ** np.arange(n - 1, -1, -1))
    hits = np.flatnonzero(members[third])
    if len(hits):
        a, b = vectors[i[hits[0]]].tolist(), vectors[j[hits[0]]].tolist()
        raise ValueError(f"not a cap set: {a}, {b} and {((-(np.array(a) + b)) % 3).tolist()} lie on a line")
    return len(vectors)
