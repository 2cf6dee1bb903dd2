"""The IBP equations of many seeds at once, as sparse arrays for the compiled kernel (numpy; trusted code).

    system = PoolSystem.build(templates, seeds, zero_sectors, prime, masters=masters, extra=targets)
    found = system.prefix(order, targets, cap=..., budget=...)   # Prefix(equations, unreduced, seeds, ops, over_budget)

Every equation of every seed is generated in a few vectorized passes: for a
template term (shift, c0, c), the coefficient at seed a is c0 + c·a mod p
and the integral is a + shift. Terms with a zero coefficient or in a zero
sector are dropped, and so are equations left empty: the same rows, in the
same order, as the pure-Python `engine.equations`. Integrals become column
numbers in Laporta's order, so the kernel compares plain ints. The master
integrals' terms are left out of the rows (an integral reduces when what is
left of it is masters only), but the equations still count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from evolve.problems.ibp import kernel

# numba's Dispatcher declares a call signature that its compiled functions do not have: call them untyped.
_add_rows: Callable[..., Any] = kernel.add_rows
_worst_labels: Callable[..., Any] = kernel.worst_labels

Integral = tuple[int, ...]
FIRST_CHUNK = 4096  # equations in the first chunk of a prefix search; each next chunk doubles


class Prefix(NamedTuple):
    """What a prefix of a seed order does: equations and seeds in, targets left, the work it took."""

    equations: int
    unreduced: int
    seeds: int
    ops: int  # pivot-row terms used by the elimination
    over_budget: bool  # stopped by the work budget (every target then counts as unreduced)


class _State:
    """A labelled echelon form that grows chunk by chunk (the arrays `kernel.add_rows` works on)."""

    def __init__(self, n_cols: int) -> None:
        self.work = np.zeros(n_cols, np.int64)  # the dense workspace row
        self.inheap = np.zeros(n_cols, np.bool_)
        self.heap = np.empty(n_cols, np.int64)
        self.piv_start = np.full(n_cols, -1, np.int64)  # column -> its pivot row in the arena (-1: none)
        self.piv_len = np.zeros(n_cols, np.int64)
        self.piv_label = np.zeros(n_cols, np.int64)
        self.arena_col = np.empty(kernel.ARENA0, np.int64)
        self.arena_val = np.empty(kernel.ARENA0, np.int64)
        self.arena_n = 0
        self.ops = 0  # terms of pivot rows used (the kernel's work)

    def _arrays(self) -> tuple:
        return self.work, self.inheap, self.heap, self.piv_start, self.piv_len, self.piv_label

    def add(self, rows: np.ndarray, labels: np.ndarray, system: PoolSystem, budget: int) -> bool:
        """Add the seeds' equations; return False if the work passed `budget` (the form is then unusable)."""
        self.arena_col, self.arena_val, self.arena_n, self.ops = _add_rows(
            rows, labels, system.seed_ptr, system.eq_ptr, system.eq_col, system.eq_val, *self._arrays(),
            self.arena_col, self.arena_val, self.arena_n, system.prime, self.ops, budget)
        return self.ops <= budget

    def worst(self, columns: np.ndarray, prime: int) -> np.ndarray:
        return _worst_labels(columns, *self._arrays(), self.arena_col, self.arena_val, prime)


@dataclass(frozen=True)
class KeyPacker:
    """One sortable key per integral that orders integrals as `engine.weight` does: (t, sector, r, s, indices).

    The fields are packed into an int64 when their widths (fitted to a set of
    integrals) fit, else kept as rows of a structured array; np.unique and
    np.searchsorted order either the same way.
    """

    n: int
    low: int  # the smallest index
    widths: tuple[int, ...]  # bits of t, sector, r, s, then of each index

    @classmethod
    def fit(cls, integrals: np.ndarray) -> KeyPacker:
        n = integrals.shape[1]
        r = np.where(integrals > 0, integrals, 0).sum(axis=1)
        s = -np.where(integrals < 0, integrals, 0).sum(axis=1)
        low = int(integrals.min(initial=0))
        span = int(integrals.max(initial=0)) - low + 1
        widths = (n.bit_length(), n, int(r.max(initial=0)).bit_length(), int(s.max(initial=0)).bit_length())
        return cls(n, low, widths + (span.bit_length(),) * n)

    def keys(self, integrals: np.ndarray) -> np.ndarray:
        """Return the keys of the rows of `integrals`; ValueError if one is outside the fitted range."""
        positive = integrals > 0
        fields = [positive.sum(axis=1), (positive * (1 << np.arange(self.n))).sum(axis=1),
                  np.where(positive, integrals, 0).sum(axis=1), -np.where(integrals < 0, integrals, 0).sum(axis=1)]
        fields += [integrals[:, i] - self.low for i in range(self.n)]
        for values, bits in zip(fields, self.widths):
            if len(values) and (values.min() < 0 or values.max() >= 1 << bits):
                raise ValueError("an integral is outside the range of this system")
        if sum(self.widths) <= 62:
            key = np.zeros(len(integrals), np.int64)
            for values, bits in zip(fields, self.widths):
                key = (key << bits) | values.astype(np.int64)
            return key
        table = np.ascontiguousarray(np.stack([v.astype(np.int64) for v in fields], axis=1))
        return table.view([(f"f{i}", np.int64) for i in range(table.shape[1])]).ravel()


@dataclass(frozen=True)
class PoolSystem:
    """The equations of a list of seeds: CSR rows grouped by seed, columns numbered in Laporta's order."""

    prime: int
    columns: np.ndarray  # (C, N) the integral of each column, lightest first
    packer: KeyPacker
    keys: np.ndarray  # (C,) their sorted Laporta keys, for looking integrals up
    seed_ptr: np.ndarray  # (S + 1,) seed i's equations are seed_ptr[i]:seed_ptr[i + 1]
    eq_ptr: np.ndarray  # (E + 1,) equation e's terms are eq_ptr[e]:eq_ptr[e + 1]
    eq_col: np.ndarray  # (nnz,) column of each term
    eq_val: np.ndarray  # (nnz,) coefficient mod prime
    masters: np.ndarray  # (M, N) the master integrals, whose terms the rows leave out

    @classmethod
    def build(cls, templates: Sequence, seeds: Sequence[Sequence[int]], zero_sectors: Iterable[int], prime: int,
              masters: Iterable[Sequence[int]] = (), extra: Iterable[Sequence[int]] = ()) -> PoolSystem:
        """Generate every seed's equations (`seeds` in Laporta's order); `extra` integrals get columns even if unused."""
        seeds_arr = np.asarray(seeds, np.int64).reshape(len(seeds), -1)  # (S, N)
        n = seeds_arr.shape[1]
        zero = np.zeros(1 << n, np.bool_)
        zero[list(zero_sectors)] = True
        weights = 1 << np.arange(n)
        parts = []  # per template: (seed, integral, coefficient) of the kept terms
        for number, template in enumerate(templates):
            shifts = np.array([term[0] for term in template], np.int64)  # (T, N)
            c0 = np.array([term[1] for term in template], np.int64)  # (T,)
            cs = np.array([term[2] for term in template], np.int64)  # (T, N)
            coef = (c0[None, :] + (seeds_arr[:, None, :] * cs[None, :, :]).sum(axis=2)) % prime  # (S, T)
            integrals = seeds_arr[:, None, :] + shifts[None, :, :]  # (S, T, N)
            keep = (coef != 0) & ~zero[((integrals > 0) * weights).sum(axis=2)]
            seed_of, term_of = np.nonzero(keep)
            parts.append((seed_of, np.full(len(seed_of), number), integrals[seed_of, term_of], coef[seed_of, term_of]))
        seed_of = np.concatenate([p[0] for p in parts])
        template_of = np.concatenate([p[1] for p in parts])
        integrals = np.concatenate([p[2] for p in parts]).reshape(-1, n)
        values = np.concatenate([p[3] for p in parts])
        masters_arr = np.asarray(list(masters), np.int64).reshape(-1, n)
        extra_arr = np.concatenate([masters_arr, np.asarray(list(extra), np.int64).reshape(-1, n)])
        every = np.concatenate([integrals, extra_arr])
        packer = KeyPacker.fit(every)
        keys, first, inverse = np.unique(packer.keys(every), return_index=True, return_inverse=True)
        columns = every[first]
        cols = inverse[: len(integrals)].astype(np.int64)
        # Rows: seed-major, then template, as engine.equations writes them.
        row_id = seed_of * len(templates) + template_of
        order = np.argsort(row_id, kind="stable")
        row_id, cols, values = row_id[order], cols[order], values[order]
        rows, row_start = np.unique(row_id, return_index=True)
        seed_ptr = np.searchsorted(rows // len(templates), np.arange(len(seeds_arr) + 1)).astype(np.int64)
        # Leave the masters' terms out; a row may be left empty, and still counts.
        is_master = np.zeros(len(columns), np.bool_)
        is_master[inverse[len(integrals): len(integrals) + len(masters_arr)]] = True
        kept = np.concatenate([[0], np.cumsum(~is_master[cols])])
        eq_ptr = kept[np.append(row_start, len(row_id))].astype(np.int64)
        keep = ~is_master[cols]
        return cls(prime, columns, packer, keys, seed_ptr, eq_ptr, cols[keep], values[keep].astype(np.int64), masters_arr)

    @property
    def equations_per_seed(self) -> np.ndarray:
        return np.diff(self.seed_ptr)

    @property
    def master_set(self) -> frozenset[Integral]:
        return frozenset(tuple(int(x) for x in m) for m in self.masters)

    def column(self, integrals: Sequence[Sequence[int]]) -> np.ndarray:
        """Return the column numbers of integrals (KeyError for one that has no column)."""
        arr = np.asarray(integrals, np.int64).reshape(len(integrals), -1)
        if not len(arr):
            return np.zeros(0, np.int64)
        try:
            wanted = self.packer.keys(arr)
        except ValueError:
            raise KeyError("an integral is outside the range of this system") from None
        found = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        bad = self.keys[found] != wanted
        if bad.any():
            raise KeyError(f"{tuple(int(x) for x in arr[bad.argmax()])} is in no equation")
        return found.astype(np.int64)

    def prefix(self, order: Sequence[int], targets: Sequence[Sequence[int]], cap: int | None = None,
               budget: int | None = None, first: int = FIRST_CHUNK) -> Prefix:
        """Add the seeds `order[0], order[1], ...` (indices into the list) until the targets reduce or `cap` equations are in.

        Returns what adding the seeds one at a time would (the seed that
        reaches the cap still goes in). The work is an elimination of the
        order's prefix in chunks of doubling size (`first` equations, then
        twice as many, ...), each chunk in Laporta's order (see
        `kernel.add_rows`): about twice the elimination of the prefix that
        was needed, never more than that of the seeds within the cap, and
        stopped once it passes `budget` pivot-row terms (then every target
        counts as unreduced).
        """
        order_arr = np.asarray(order, np.int64).reshape(-1)
        n_seeds = len(self.seed_ptr) - 1
        if len(order_arr) and (order_arr.min() < 0 or order_arr.max() >= n_seeds):
            raise IndexError("a seed index is outside the list")
        if len(np.unique(order_arr)) != len(order_arr):
            raise ValueError("a seed appears twice")
        wanted = [tuple(int(x) for x in t) for t in targets]
        open_targets = [t for t in wanted if t not in self.master_set]  # a master target is reduced already
        columns = self.column(open_targets)
        used = np.cumsum(self.equations_per_seed[order_arr])
        within = len(order_arr) if cap is None else min(len(order_arr), int(np.searchsorted(used, cap)) + 1)
        if not open_targets:
            return Prefix(0, 0, 0, 0, False)
        labels = np.full(n_seeds, -1, np.int64)
        labels[order_arr[:within]] = np.arange(within)
        state, limit = _State(len(self.columns)), np.iinfo(np.int64).max if budget is None else budget
        done, size, worst = 0, first, np.full(len(columns), -1)
        while done < within:
            end = min(within, int(np.searchsorted(used, size)) + 1)
            if not state.add(np.sort(order_arr[done:end]), labels, self, limit):
                return Prefix(int(used[end - 1]), len(open_targets), end, state.ops, True)
            done, size = end, 2 * size
            worst = state.worst(columns, self.prime)
            if (worst >= 0).all():
                count = int(worst.max()) + 1
                return Prefix(int(used[count - 1]), 0, count, state.ops, False)
        total = int(used[within - 1]) if within else 0
        return Prefix(total, int((worst < 0).sum()), within, state.ops, False)

    def leftovers(self, queries: Sequence[Sequence[int]]) -> list[list[Integral]]:
        """Eliminate all the equations; return, per query integral, the integrals without a pivot it reduces to."""
        ptr, out = kernel.leftovers(self.eq_ptr, self.eq_col, self.eq_val, len(self.columns),
                                    self.column(queries), self.prime)
        return [[tuple(int(x) for x in self.columns[c]) for c in out[ptr[i]:ptr[i + 1]]] for i in range(len(queries))]
