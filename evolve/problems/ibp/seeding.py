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
import hashlib
import itertools
import random
import threading
from collections.abc import Iterable, Sequence

from evolve.problems.ibp import engine
from evolve.problems.ibp.family import Family, numeric_templates, symmetry_permutation
from evolve.problems.ibp.system import PoolSystem

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
    if dots is None and r_max is None:
        raise ValueError("seeds: give r_max or dots")
    out = []
    for mask in sectors:
        t = bin(mask).count("1")
        top = t + dots if dots is not None else int(r_max or 0)
        for r in range(t, top + 1):
            for s in range(s_max + 1):
                out += integrals_in_sector(n, mask, r, s)
    return sorted(set(out), key=engine.weight)


def subsectors(mask: int) -> list[int]:
    """Return the sector and all its subsectors (non-empty bitmasks below it)."""
    return [sub for sub in range(1, mask + 1) if sub & mask == sub]


def _problem(fam: Family, values: dict, zero: Iterable[int] = (), masters: Iterable[Integral] = (),
             targets: Iterable[Integral] = (), lorentz: bool = False) -> dict:
    return {"prime": PRIME, "n": fam.n, "templates": numeric_templates(fam, values, PRIME, lorentz), "lorentz": lorentz,
            "zero_sectors": sorted(zero), "masters": [list(m) for m in masters], "targets": [list(t) for t in targets]}


def random_point(fam: Family, seed: int) -> dict[str, int]:
    """Draw d and the invariants as random field elements (reproducible from `seed`)."""
    rng = random.Random(seed)
    return {name: rng.randrange(2, PRIME - 1) for name in ("d", *fam.invariants)}


def _leftovers(fam: Family, point_seed: int, zero: Iterable[int], sectors: Sequence[int], s_max: int, dots: int,
               queries: Sequence[Integral]) -> list[list[Integral]]:
    """Eliminate every seed of the sectors (r <= t + dots, s <= s_max); return what each query reduces to."""
    templates = numeric_templates(fam, random_point(fam, point_seed), PRIME)
    system = PoolSystem.build(templates, seeds(fam.n, sectors, None, s_max, dots=dots), zero, PRIME, extra=queries)
    return system.leftovers(queries)


@functools.cache
def zero_sectors(fam: Family, point_seed: int = 1) -> frozenset[int]:
    """Return the sectors whose integrals all vanish (scaleless), found by the reduction itself.

    Sectors are bitmasks over the family's lines (irreducible numerators are
    never lines). One system holds every sector's seeds with r <= t + 1 and
    s <= 1 and no sector dropped; a sector is zero when its corner integral
    (all lines to the power one) reduces to nothing.
    """
    sectors = subsectors(fam.lines_mask)
    corners = [tuple(1 if mask >> i & 1 else 0 for i in range(fam.n)) for mask in sectors]
    # Sector 0 (no propagator at all) is scaleless: zero in dimensional regularization.
    left = _leftovers(fam, point_seed, {0}, sectors, 1, 1, corners)
    return frozenset({0} | {mask for mask, rest in zip(sectors, left) if not rest})


@functools.cache
def masters(fam: Family, point_seed: int = 1, top: int | None = None) -> tuple[Integral, ...]:
    """Return the master integrals: what the integrals with r <= t + 1, s <= 1 reduce to in a larger system.

    Only the non-zero subsectors of `top` (default: every line of the
    family; never an irreducible numerator) are searched.
    """
    zero = zero_sectors(fam, point_seed)
    live = [m for m in subsectors(fam.lines_mask if top is None else top) if m not in zero]
    queries = seeds(fam.n, live, None, 1, dots=1)
    found = {a for rest in _leftovers(fam, point_seed, zero, live, 2, 2, queries) for a in rest}
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
    """Return [t, r, s, dots, distance]: lines, positive and negative power sums, r - t, L1 distance to the nearest target."""
    t, _, r, s, _ = engine.weight(seed)
    distance = min(sum(abs(a - b) for a, b in zip(seed, target)) for target in targets)
    return [t, r, s, r - t, distance]


BUDGET_FACTOR = 8  # a bounded input's work budget: this many times the standard seeding's elimination


@functools.cache
def _build(fam: Family, targets: tuple[Integral, ...], point_seed: int, bounded: bool, lorentz: bool) -> dict:
    zero = zero_sectors(fam)
    top = functools.reduce(int.__or__, (engine.sector(t) for t in targets))
    found = masters(fam, top=top) if top != fam.lines_mask else masters(fam)
    problem = _problem(fam, random_point(fam, point_seed), zero, found, targets, lorentz)
    pool = standard_seeds(fam, targets, zero, extra=1)
    standard = standard_seeds(fam, targets, zero)
    problem.update(family=fam.name, candidates=[list(c) for c in pool],
                   features=[features(c, targets) for c in pool],
                   r_target=max(engine.weight(t)[2] for t in targets),
                   s_target=max(engine.weight(t)[3] for t in targets),
                   t_target=max(engine.weight(t)[0] for t in targets))
    problem["key"] = hashlib.sha1(repr(sorted(problem.items())).encode()).hexdigest()
    system = pool_system(problem)
    per_seed = system.equations_per_seed
    index = {tuple(c): i for i, c in enumerate(pool)}
    standard_rows = [index[c] for c in standard]  # the pool is Laporta-ordered, and so is this
    problem.update(pool_equations=int(per_seed.sum()), standard_seeds=len(standard),
                   standard_equations=int(per_seed[standard_rows].sum()))
    if bounded:  # a rule that needs more than the standard seeding, or far more work, is not better than it
        work = system.prefix(standard_rows, targets).ops
        problem.update(cap_equations=problem["standard_equations"], work_budget=BUDGET_FACTOR * work)
    else:
        problem.update(cap_equations=problem["pool_equations"], work_budget=None)
    return problem


_SYSTEMS: dict[str, PoolSystem] = {}
_SYSTEMS_LOCK = threading.Lock()  # the loop scores candidates in several threads


def pool_system(problem: dict) -> PoolSystem:
    """Return the compiled equations of a problem's candidate pool (built once per problem and process)."""
    key = problem["key"]
    with _SYSTEMS_LOCK:
        if key not in _SYSTEMS:
            _SYSTEMS[key] = PoolSystem.build(problem["templates"], problem["candidates"], problem["zero_sectors"],
                                             problem["prime"], masters=problem["masters"], extra=problem["targets"])
        return _SYSTEMS[key]


def build_input(fam: Family, targets: Sequence[Sequence[int]], point_seed: int = 7, bounded: bool = False,
                lorentz: bool = False) -> dict:
    """Return the problem input for a family and its target integrals (cached; a fresh copy each call).

    Masters are searched in the subsectors of the targets' sectors only.
    With `bounded`, a seed order is cut at the standard seeding's equations
    and at BUDGET_FACTOR times its elimination work; without it, the whole
    candidate pool may go in. With `lorentz`, each seed also gives the
    family's Lorentz-invariance equations (zero sectors and masters are
    found from the IBP relations alone: the extra identities follow from them).
    """
    key = tuple(tuple(int(x) for x in t) for t in targets)
    if not key or any(len(t) != fam.n for t in key):
        raise ValueError(f"{fam.name}: targets must be index tuples of length {fam.n}")
    if any(t[i] > 0 for t in key for i in fam.irreducible):
        raise ValueError(f"{fam.name}: an irreducible numerator cannot be a propagator in a target")
    return dict(_build(fam, key, point_seed, bounded, lorentz))
