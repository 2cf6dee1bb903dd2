"""The compiled elimination kernel: sparse rows over a prime field, pivots at the heaviest column (numba).

    arena = kernel.add_rows(rows, labels, seed_ptr, eq_ptr, eq_col, eq_val, *state, *arena, p)  # a labelled echelon form
    worst = kernel.worst_labels(targets, *state, arena_col, arena_val, p)  # the prefix each target needs

Trusted code only (the loop's process and the benchmarks); candidates never
run it. Columns are integrals numbered in Laporta's order (a larger number
is a heavier integral); `system.PoolSystem` builds the arrays.

The algorithm is the one of the pure-Python `engine`, compiled: each new
row is loaded into a dense workspace (one slot per column) with a max-heap
of the columns it touches, and its heaviest column is eliminated with the
stored pivot row until a column without a pivot leads it; the row is then
normalized and stored there. A stored row is replaced only when a row of a
smaller label (earlier in the candidate's order) takes its column, so a
target's reduction is decided by popping columns in decreasing order: the
first non-master column without a pivot blocks it, and nothing lighter can
unblock it (see `worst_labels`). The work per row is a few heap operations
per term touched, in machine integers: p < 2**31 keeps a product of two
residues inside int64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ARENA0 = 1 << 16  # initial room for stored pivot rows (entries); doubled as needed


@njit(cache=True, inline="always")
def _push(heap: np.ndarray, n: int, c: int) -> int:
    """Push column c on the max-heap of n entries; return the new size."""
    i = n
    heap[i] = c
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] >= c:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = c
    return n + 1


@njit(cache=True, inline="always")
def _pop(heap: np.ndarray, n: int) -> int:
    """Remove the largest column from the heap of n entries (the caller reads heap[0] first)."""
    n -= 1
    last = heap[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and heap[child + 1] > heap[child]:
            child += 1
        if heap[child] <= last:
            break
        heap[i] = heap[child]
        i = child
    if n > 0:
        heap[i] = last
    return n


@njit(cache=True, nogil=True)
def _inverse(a: int, p: int) -> int:
    """Return a^-1 mod p (Fermat: p is prime)."""
    result, base, e = 1, a % p, p - 2
    while e:
        if e & 1:
            result = result * base % p
        base = base * base % p
        e >>= 1
    return result


@njit(cache=True, nogil=True)
def _clear(hn, work, inheap, heap):
    while hn > 0:
        c = heap[0]
        hn = _pop(heap, hn)
        inheap[c] = False
        work[c] = 0


@njit(cache=True, nogil=True)
def _store(lead, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, arena_n, p):
    """Normalize the workspace row at `lead` and store it as that column's pivot; return the arena."""
    if arena_n + hn > arena_col.shape[0]:
        size = max(2 * arena_col.shape[0], arena_n + hn)
        grown_col = np.empty(size, np.int64)
        grown_val = np.empty(size, np.int64)
        grown_col[:arena_n] = arena_col[:arena_n]
        grown_val[:arena_n] = arena_val[:arena_n]
        arena_col, arena_val = grown_col, grown_val
    inv = _inverse(work[lead], p)
    hn = _pop(heap, hn)  # the lead itself
    inheap[lead] = False
    work[lead] = 0
    count = 0
    while hn > 0:
        k = heap[0]
        hn = _pop(heap, hn)
        inheap[k] = False
        if work[k] != 0:
            arena_col[arena_n + count] = k
            arena_val[arena_n + count] = work[k] * inv % p
            count += 1
            work[k] = 0
    piv_start[lead] = arena_n
    piv_len[lead] = count
    return arena_col, arena_val, arena_n + count


@njit(cache=True, nogil=True)
def _swap_in(c, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, arena_n, p):
    """Store the workspace row (led by c) as c's pivot and load the old pivot minus it into the workspace."""
    old_start, old_len = piv_start[c], piv_len[c]
    arena_col, arena_val, arena_n = _store(c, hn, work, inheap, heap, piv_start, piv_len,
                                           arena_col, arena_val, arena_n, p)
    hn = 0
    for j in range(old_start, old_start + old_len):  # the old pivot (1 at c, which cancels) ...
        k = arena_col[j]
        work[k] = arena_val[j]
        hn = _push(heap, hn, k)
        inheap[k] = True
    for j in range(piv_start[c], piv_start[c] + piv_len[c]):  # ... minus the new one
        k = arena_col[j]
        if work[k] == 0 and not inheap[k]:
            hn = _push(heap, hn, k)
            inheap[k] = True
        work[k] = (work[k] + p - arena_val[j]) % p
    return hn, arena_col, arena_val, arena_n


@njit(cache=True, nogil=True)
def _reduce_at(c, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, p):
    """Eliminate the leading column c of the workspace row with c's pivot row; return the heap size."""
    w = work[c]
    hn = _pop(heap, hn)
    inheap[c] = False
    work[c] = 0
    f = p - w  # row += f * pivot row (the pivot has coefficient 1 at c)
    start = piv_start[c]
    for j in range(start, start + piv_len[c]):
        k = arena_col[j]
        if work[k] == 0 and not inheap[k]:
            hn = _push(heap, hn, k)
            inheap[k] = True
        work[k] = (work[k] + f * arena_val[j]) % p
    return hn


@njit(cache=True, nogil=True)
def _lead(hn, work, inheap, heap):
    """Drop cancelled columns off the top of the heap; return (the leading column or -1, heap size)."""
    while hn > 0:
        c = heap[0]
        if work[c] != 0:
            return c, hn
        hn = _pop(heap, hn)
        inheap[c] = False
    return -1, hn


@njit(cache=True, nogil=True)
def add_rows(rows, labels, seed_ptr, eq_ptr, eq_col, eq_val, work, inheap, heap, piv_start, piv_len, piv_label,
             arena_col, arena_val, arena_n, p, ops, budget):
    """Add the equations of the seeds `rows` to a labelled echelon form; return (arena_col, arena_val, arena_n, ops).

    `ops` counts the terms of pivot rows used so far; once it passes
    `budget` the call stops (the form is then unusable): a deterministic
    bound on the work, whatever the order.

    `rows` lists seeds in any order (Laporta's is the cheap one) and
    `labels[seed]` is its position in the candidate's order. Every column
    keeps the pivot row of the smallest label: a row that arrives at a
    column whose pivot has a larger label takes its place, and the old
    pivot goes on being reduced with its own label. So each stored row is
    its seed's equation plus equations of smaller labels, and the stored
    rows labelled <= L span what the seeds labelled <= L span, for every L.
    Calls may follow one another with later labels (a growing prefix).
    """
    for i in range(rows.shape[0]):
        if ops > budget:
            break
        s = rows[i]
        for e in range(seed_ptr[s], seed_ptr[s + 1]):
            label = labels[s]
            hn = 0
            for j in range(eq_ptr[e], eq_ptr[e + 1]):
                c = eq_col[j]
                work[c] = eq_val[j]
                hn = _push(heap, hn, c)
                inheap[c] = True
            while True:
                lead, hn = _lead(hn, work, inheap, heap)
                if lead < 0:
                    break
                if piv_start[lead] < 0:  # a new pivot
                    arena_col, arena_val, arena_n = _store(lead, hn, work, inheap, heap, piv_start, piv_len,
                                                           arena_col, arena_val, arena_n, p)
                    piv_label[lead] = label
                    break
                ops += piv_len[lead] + 1
                if piv_label[lead] <= label:
                    hn = _reduce_at(lead, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, p)
                    continue
                # The stored pivot comes later in the candidate's order: this row takes its place.
                ops += hn
                old_label = piv_label[lead]
                hn, arena_col, arena_val, arena_n = _swap_in(lead, hn, work, inheap, heap, piv_start, piv_len,
                                                             arena_col, arena_val, arena_n, p)
                piv_label[lead] = label
                label = old_label
    return arena_col, arena_val, arena_n, ops


@njit(cache=True, nogil=True)
def worst_labels(targets, work, inheap, heap, piv_start, piv_len, piv_label, arena_col, arena_val, p):
    """Return, per target column, the largest label its reduction uses (-1: a non-master column blocks it).

    A target's expansion in the stored rows is unique (distinct leads), so
    that label is the shortest prefix of the candidate's order that reduces
    it. Master integrals are not in the rows: reaching only them is reduced.
    """
    out = np.full(targets.shape[0], -1, np.int64)
    for i in range(targets.shape[0]):
        t = targets[i]
        work[t] = 1
        heap[0] = t
        inheap[t] = True
        hn = 1
        worst = 0
        while True:
            lead, hn = _lead(hn, work, inheap, heap)
            if lead < 0:
                out[i] = worst
                break
            if piv_start[lead] < 0:  # a non-master integral that no equation leads: not reduced
                _clear(hn, work, inheap, heap)
                break
            worst = max(worst, piv_label[lead])
            hn = _reduce_at(lead, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, p)
    return out


@njit(cache=True, nogil=True)
def leftovers(rows_ptr, rows_col, rows_val, n_cols, queries, p):
    """Eliminate every row, then reduce each query column fully; return what is left of each (CSR).

    Returns (ptr, cols): the columns without a pivot left in query i's
    reduction are cols[ptr[i]:ptr[i + 1]] (empty: it reduces to zero).
    """
    work = np.zeros(n_cols, np.int64)
    inheap = np.zeros(n_cols, np.bool_)
    heap = np.empty(n_cols, np.int64)
    piv_start = np.full(n_cols, -1, np.int64)
    piv_len = np.zeros(n_cols, np.int64)
    arena_col = np.empty(ARENA0, np.int64)
    arena_val = np.empty(ARENA0, np.int64)
    arena_n = 0
    for e in range(rows_ptr.shape[0] - 1):
        hn = 0
        for j in range(rows_ptr[e], rows_ptr[e + 1]):
            c = rows_col[j]
            work[c] = rows_val[j]
            hn = _push(heap, hn, c)
            inheap[c] = True
        while True:
            lead, hn = _lead(hn, work, inheap, heap)
            if lead < 0:
                break
            if piv_start[lead] < 0:
                arena_col, arena_val, arena_n = _store(lead, hn, work, inheap, heap, piv_start, piv_len,
                                                       arena_col, arena_val, arena_n, p)
                break
            hn = _reduce_at(lead, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, p)
    ptr = np.zeros(queries.shape[0] + 1, np.int64)
    out = np.empty(16, np.int64)
    n_out = 0
    for i in range(queries.shape[0]):
        q = queries[i]
        work[q] = 1
        heap[0] = q
        inheap[q] = True
        hn = 1
        while True:
            lead, hn = _lead(hn, work, inheap, heap)
            if lead < 0:
                break
            if piv_start[lead] >= 0:
                hn = _reduce_at(lead, hn, work, inheap, heap, piv_start, piv_len, arena_col, arena_val, p)
                continue
            if n_out == out.shape[0]:
                grown = np.empty(2 * n_out, np.int64)
                grown[:n_out] = out[:n_out]
                out = grown
            out[n_out] = lead
            n_out += 1
            hn = _pop(heap, hn)
            inheap[lead] = False
            work[lead] = 0
        ptr[i + 1] = n_out
    return ptr, out[:n_out]
