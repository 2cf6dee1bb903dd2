"""The `ibp_seeding` problem's inputs and its trusted check.

Each input is a family with a set of target integrals; `problem_input`
builds it once per process (sympy derivation, zero sectors, masters,
candidate seeds) and `check_seeds` re-runs the reduction on the seeds a
candidate says it used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from evolve.problems.ibp import engine
from evolve.problems.ibp.families import FAMILIES
from evolve.problems.ibp.seeding import build_input, integrals_in_sector

# name -> (family, targets). Box targets: every top-sector integral with r = 6 (or 7), plus the
# triangle (D1 D2 D3) with one power of D4 in the numerator, so that s = 1 seeds are needed.
TARGETS: dict[str, tuple[str, list[tuple[int, ...]]]] = {
    "box": ("box", integrals_in_sector(4, 0b1111, 6, 0) + [(1, 1, 1, -1)]),
    "box_r7": ("box", integrals_in_sector(4, 0b1111, 7, 0) + [(1, 1, 1, -1)]),
    # Kite: every top-sector integral with r = 6, plus the bubble squared with (k1 - k2)^2 upstairs.
    "kite": ("kite", integrals_in_sector(5, 0b11111, 6, 0) + [(1, 1, 1, 1, -1)]),
}
SPLITS = {"train": ("box",), "test": ("box_r7", "kite")}


def problem_input(name: str) -> dict:
    """Return the plain-data problem of a named input (cached per process)."""
    family, targets = TARGETS[name]
    return build_input(FAMILIES[family], targets)


def check_seeds(problem: dict, output: Sequence) -> int:
    """Return the score of the seeds a candidate used, recomputed here; ValueError if they are not candidates."""
    if not isinstance(output, list | tuple):
        raise ValueError(f"expected a list of seeds, got {type(output).__name__}")
    pool = {tuple(c) for c in problem["candidates"]}
    seeds = []
    for seed in output:
        key = tuple(seed) if isinstance(seed, list | tuple) else None
        if key is None or not all(isinstance(x, int) and not isinstance(x, bool) for x in key) or key not in pool:
            raise ValueError(f"{str(seed)[:60]} is not one of the candidate seeds")
        seeds.append(key)
    return _recount(problem, tuple(seeds))


_RECOUNTS: OrderedDict[tuple, int] = OrderedDict()
RECOUNTS_KEPT = 256  # GP often writes equivalent rules: the same seed list is checked once


def _recount(problem: dict, seeds: tuple[tuple[int, ...], ...]) -> int:
    key = (problem["family"], tuple(map(tuple, problem["targets"])), problem["prime"], seeds)
    if key in _RECOUNTS:
        _RECOUNTS.move_to_end(key)
        return _RECOUNTS[key]
    used, unreduced = engine.count_unreduced(problem, list(seeds))
    _RECOUNTS[key] = score = engine.score(problem, used, unreduced)
    if len(_RECOUNTS) > RECOUNTS_KEPT:
        _RECOUNTS.popitem(last=False)
    return score
