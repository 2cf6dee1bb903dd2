"""The numeric IBP engine: equations over a prime field, Laporta ordering, sparse elimination.

    rows = equations(problem, seed)                       # the IBP equations of one seed
    used, unreduced, seeds = seed_until_reduced(problem, ordered_seeds)

Standard library only, and no imports from this package: the `ibp_seeding`
spec runs this file's source inside the sandbox (it arrives in the inputs),
and the trusted check imports it as a module, so both compute the same.

`problem` is a plain dict (built by `seeding.build_input`): "prime", "n"
(number of indices), "templates" (per IBP relation: [shift, c0, [c_1..c_N]]
with field elements), "zero_sectors" (bitmasks of sectors whose integrals
vanish), "masters" and "targets" (index lists). An integral is a tuple of
N ints; its sector is the bitmask of the positive indices.
"""

from __future__ import annotations

Integral = tuple  # (a_1, ..., a_N)
Row = dict  # {packed integral: coefficient mod prime}
INDEX_BITS, INDEX_OFFSET = 6, 32  # indices in [-32, 31]
SUM_BITS = 10  # r and s below 1024


def sector(a: Integral) -> int:
    """Return the bitmask of the propagators (positive indices) of an integral."""
    return sum(1 << i for i, x in enumerate(a) if x > 0)


def weight(a: Integral) -> tuple:
    """Return Laporta's sort key: lines t, sector, r (sum of positive powers), s (of negative ones), indices."""
    t = sum(1 for x in a if x > 0)
    r = sum(x for x in a if x > 0)
    s = -sum(x for x in a if x < 0)
    return (t, sector(a), r, s, tuple(a))


def pack(a: Integral) -> int:
    """Return one int that orders integrals as `weight` does, so the elimination compares plain ints."""
    t, mask, r, s, _ = weight(a)
    if r >= 1 << SUM_BITS or s >= 1 << SUM_BITS or not all(-INDEX_OFFSET <= x < INDEX_OFFSET for x in a):
        raise ValueError(f"indices {a} are out of the engine's range")
    key = ((t << len(a) | mask) << SUM_BITS | r) << SUM_BITS | s
    for x in a:
        key = key << INDEX_BITS | (x + INDEX_OFFSET)
    return key


def unpack(key: int, n: int) -> Integral:
    """Return the indices of a packed integral."""
    mask = (1 << INDEX_BITS) - 1
    return tuple(((key >> (INDEX_BITS * (n - 1 - i))) & mask) - INDEX_OFFSET for i in range(n))


def equations(problem: dict, seed: Integral) -> list:
    """Return the seed's IBP equations as rows {packed integral: coefficient}, zero-sector integrals dropped."""
    prime, zero = problem["prime"], problem["_zero"] if "_zero" in problem else set(problem["zero_sectors"])
    keys = problem.setdefault("_keys", {})
    rows = []
    for template in problem["templates"]:
        row: Row = {}
        for shift, c0, cs in template:
            coef = (c0 + sum(c * a for c, a in zip(cs, seed))) % prime
            if not coef:
                continue
            integral = tuple(a + b for a, b in zip(seed, shift))
            key = keys.get(integral)
            if key is None:
                key = keys[integral] = -1 if sector(integral) in zero else pack(integral)
            if key >= 0:
                row[key] = (row.get(key, 0) + coef) % prime
        row = {k: v for k, v in row.items() if v}
        if row:
            rows.append(row)
    return rows


class System:
    """A growing echelon form: each stored row is normalized at its leading (heaviest) integral."""

    def __init__(self, prime: int) -> None:
        self.prime = prime
        self.pivots: dict = {}  # leading packed integral -> row with coefficient 1 there

    def add(self, row: Row) -> bool:
        """Reduce a row against the stored ones; store it if anything is left. Return whether it was new."""
        p, row, pivots = self.prime, dict(row), self.pivots
        while row:
            lead = max(row)
            pivot = pivots.get(lead)
            if pivot is None:
                inv = pow(row[lead], p - 2, p)
                pivots[lead] = {k: v * inv % p for k, v in row.items()}
                return True
            factor = row[lead]
            for k, v in pivot.items():
                x = (row.get(k, 0) - factor * v) % p
                if x:
                    row[k] = x
                else:
                    del row[k]
        return False

    def reduce_key(self, target: int) -> Row:
        """Return the packed target through integrals that lead no row (back-substitution)."""
        p, expr, pivots = self.prime, {target: 1}, self.pivots
        while True:
            leads = [k for k in expr if k in pivots]
            if not leads:
                return expr
            lead = max(leads)
            factor = expr[lead]
            for k, v in pivots[lead].items():
                x = (expr.get(k, 0) - factor * v) % p
                if x:
                    expr[k] = x
                else:
                    del expr[k]

    def express(self, target: Integral) -> dict:
        """Return {integral: coefficient}: the target through integrals that lead no row."""
        return {unpack(k, len(target)): v for k, v in self.reduce_key(pack(tuple(target))).items()}


def blocker(system: System, target: int, masters: set) -> int | None:
    """Return the heaviest non-master integral (packed) left in the target's reduction, or None if it reduced."""
    left = [k for k in system.reduce_key(target) if k not in masters]
    return max(left) if left else None


def seed_until_reduced(problem: dict, seeds: list) -> tuple:
    """Add the seeds' equations in the given order until every target reduces to masters.

    Returns (equations used, number of unreduced targets, seeds used). A
    target is re-checked only once the integral that blocked it last time
    leads a row, so the checks stay cheap.
    """
    problem = dict(problem, _zero=set(problem["zero_sectors"]), _keys={})
    masters = {pack(tuple(m)) for m in problem["masters"]}
    system = System(problem["prime"])
    blocked = {pack(tuple(t)): pack(tuple(t)) for t in problem["targets"]}  # target -> what blocks it
    used = 0
    for count, seed in enumerate(seeds, 1):
        for row in equations(problem, tuple(seed)):
            used += 1
            system.add(row)
        for t, b in list(blocked.items()):
            if b in system.pivots:
                found = blocker(system, t, masters)
                if found is None:
                    del blocked[t]
                else:
                    blocked[t] = found
        if not blocked:
            return used, 0, count
    return used, len(blocked), len(seeds)


def count_unreduced(problem: dict, seeds: list) -> tuple:
    """Return (equations, unreduced targets) for the whole seed list at once (the trusted re-check)."""
    problem = dict(problem, _zero=set(problem["zero_sectors"]), _keys={})
    masters = {pack(tuple(m)) for m in problem["masters"]}
    system, used = System(problem["prime"]), 0
    for seed in seeds:
        for row in equations(problem, tuple(seed)):
            used += 1
            system.add(row)
    left = sum(1 for t in problem["targets"] if blocker(system, pack(tuple(t)), masters) is not None)
    return used, left


def score(problem: dict, used: int, unreduced: int) -> int:
    """Return minus the equations used; with unreduced targets, minus the whole pool's equations times (1 + unreduced)."""
    if unreduced:
        return -problem["pool_equations"] * (1 + unreduced)
    return -used
