"""Seeds for a Laporta reduction: zero sectors, master integrals, candidate seeds, standard seeding.

    problem = build_input(FAMILIES["box"], targets=[(2, 1, 1, 1), ...])
    engine.seed_until_reduced(problem, problem["candidates"])

Trusted code (sympy through `family`); what it returns is plain data that the
sandboxed entry can take: the field-valued templates, the zero sectors, the
masters, the targets, the candidate seeds with their features, and the
engine's own source.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from evolve.problems.ibp import engine
from evolve.problems.ibp.family import Family, numeric_templates, symmetry_permutation

PRIME = 2_147_483_647  # 2^31 - 1: products of two residues stay cheap Python ints
Integral = tuple[int, ...]


def integrals_in_sector(n: int, mask: int, r: int, s: int) -> list[Integral]:
    """Return the integrals of a sector with exactly r = Σ positive and s = Σ |negative| powers."""
    lines = [i for i in range(n) if mask >> i & 1]
    others = [i for i in range(n) if not mask >> i & 1]
    if r < len(lines) or (s and not others):
        return []
    out = []
    for dots in _compositions(r - len(lines), len(lines)):
        for nums in _compositions(s, len(others)):
            a = [0] * n
            for i, x in zip(lines, dots):
                a[i] = 1 + x
            for i, x in zip(others, nums):
                a[i] = -x
            out.append(tuple(a))
    return out


def _compositions(total: int, parts: int) -> Iterable[tuple[int, ...]]:
    """Yield the ways to write `total` as an ordered sum of `parts` non-negative ints."""
    if parts == 0:
        if total == 0:
            yield ()
        return
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


def seeds(n: int, sectors: Iterable[int], r_max: int | None, s_max: int, dots: int | None = None) -> list[Integral]:
    """Return every integral of the sectors with t <= r <= r_max and s <= s_max, Laporta-ordered.

    With `dots`, the bound is per sector: r <= t + dots.
    """
    out = []
    for mask in sectors:
        t = bin(mask).count("1")
        top = t + dots if dots is not None else r_max
        for r in range(t, top + 1):
            for s in range(s_max + 1):
                out += integrals_in_sector(n, mask, r, s)
    return sorted(set(out), key=engine.weight)


def subsectors(mask: int) -> list[int]:
    """Return the sector and all its subsectors (non-empty bitmasks below it)."""
    return [sub for sub in range(1, mask + 1) if sub & mask == sub]


def _problem(fam: Family, values: dict, zero: Iterable[int] = (), masters: Iterable[Integral] = (),
             targets: Iterable[Integral] = ()) -> dict:
    return {"prime": PRIME, "n": fam.n, "templates": numeric_templates(fam, values, PRIME),
            "zero_sectors": sorted(zero), "masters": [list(m) for m in masters], "targets": [list(t) for t in targets]}


def random_point(fam: Family, seed: int) -> dict[str, int]:
    """Draw d and the invariants as random field elements (reproducible from `seed`)."""
    rng = random.Random(seed)
    return {name: rng.randrange(2, PRIME - 1) for name in ("d", *fam.invariants)}


@functools.cache
def zero_sectors(fam: Family, point_seed: int = 1) -> frozenset[int]:
    """Return the sectors whose integrals all vanish (scaleless), found by the reduction itself.

    One system holds every sector's seeds with r <= t + 1 and s <= 1 and no
    sector dropped; a sector is zero when its corner integral (all lines to
    the power one) reduces to nothing.
    """
    full = (1 << fam.n) - 1
    problem = _problem(fam, random_point(fam, point_seed))
    problem["_zero"] = {0}  # no propagator at all: scaleless, zero in dimensional regularization
    system = engine.System(PRIME)
    for seed in seeds(fam.n, range(1, full + 1), None, 1, dots=1):
        for row in engine.equations(problem, seed):
            system.add(row)
    zero = {0}
    for mask in range(1, full + 1):
        corner = tuple(1 if mask >> i & 1 else 0 for i in range(fam.n))
        if not system.express(corner):
            zero.add(mask)
    return frozenset(zero)


@functools.cache
def masters(fam: Family, point_seed: int = 1) -> tuple[Integral, ...]:
    """Return the master integrals: what the integrals with r <= t + 1, s <= 1 reduce to in a larger system."""
    full = (1 << fam.n) - 1
    zero = zero_sectors(fam, point_seed)
    live = [m for m in range(1, full + 1) if m not in zero]
    problem = dict(_problem(fam, random_point(fam, point_seed), zero), _zero=set(zero))
    system = engine.System(PRIME)
    for seed in seeds(fam.n, live, None, 2, dots=2):
        for row in engine.equations(problem, seed):
            system.add(row)
    found: set[Integral] = set()
    for integral in seeds(fam.n, live, None, 1, dots=1):
        found |= set(system.express(integral))
    return tuple(sorted(found, key=engine.weight))


def masters_up_to_symmetry(fam: Family, found: Sequence[Integral]) -> int:
    """Count the masters' orbits under the family's declared symmetries."""
    perms = [symmetry_permutation(fam, sub) for sub in fam.symmetries]
    left, orbits = set(found), 0
    while left:
        orbits += 1
        frontier = [left.pop()]
        while frontier:
            a = frontier.pop()
            for perm in perms:
                image = [0] * fam.n
                for i, x in enumerate(a):
                    image[perm[i]] = x
                if tuple(image) in left:
                    left.remove(tuple(image))
                    frontier.append(tuple(image))
    return orbits


def standard_seeds(fam: Family, targets: Sequence[Integral], zero: Iterable[int], extra: int = 0) -> list[Integral]:
    """Return Laporta's standard seeding: every seed up to the targets' r and s in the needed sectors.

    Needed sectors are the targets' sectors and their non-zero subsectors;
    `extra` raises both bounds (the candidate pool is the standard set with
    extra = 1).
    """
    zero = set(zero)
    needed = sorted({sub for t in targets for sub in subsectors(engine.sector(t)) if sub not in zero})
    r_max = max(engine.weight(t)[2] for t in targets) + extra
    s_max = max(engine.weight(t)[3] for t in targets) + extra
    return seeds(fam.n, needed, r_max, s_max)


def features(seed: Integral, targets: Sequence[Integral]) -> list[int]:
    """Return [t, r, s, distance]: lines, positive and negative power sums, L1 distance to the nearest target."""
    t, _, r, s, _ = engine.weight(seed)
    distance = min(sum(abs(a - b) for a, b in zip(seed, target)) for target in targets)
    return [t, r, s, distance]


def engine_source() -> str:
    """Return the engine module's source, which the sandboxed entry runs."""
    return Path(engine.__file__).read_text()


@functools.cache
def _build(fam: Family, targets: tuple[Integral, ...], point_seed: int) -> dict:
    zero = zero_sectors(fam)
    problem = _problem(fam, random_point(fam, point_seed), zero, masters(fam), targets)
    pool = standard_seeds(fam, targets, zero, extra=1)
    standard = standard_seeds(fam, targets, zero)
    probe = dict(problem, _zero=set(zero))
    problem.update(
        family=fam.name,
        candidates=[list(c) for c in pool],
        features=[features(c, targets) for c in pool],
        r_target=max(engine.weight(t)[2] for t in targets),
        s_target=max(engine.weight(t)[3] for t in targets),
        pool_equations=sum(len(engine.equations(probe, c)) for c in pool),
        standard_seeds=len(standard),
        standard_equations=engine.count_unreduced(problem, standard)[0],
        engine=engine_source(),
    )
    return problem


def build_input(fam: Family, targets: Sequence[Sequence[int]], point_seed: int = 7) -> dict:
    """Return the problem input for a family and its target integrals (cached; a fresh copy each call)."""
    key = tuple(tuple(int(x) for x in t) for t in targets)
    if not key or any(len(t) != fam.n for t in key):
        raise ValueError(f"{fam.name}: targets must be index tuples of length {fam.n}")
    return dict(_build(fam, key, point_seed))
