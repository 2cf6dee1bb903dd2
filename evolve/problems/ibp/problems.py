"""The IBP problems' inputs and their trusted scorer.

Each input is a family with a set of target integrals; `problem_input`
builds it once per process (sympy derivation, zero sectors, masters,
candidate seeds, their compiled equations). A candidate only orders the
candidate seeds; `score_order` runs the elimination on that order here, in
the loop's process, once per candidate and input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from evolve.problems.ibp.families import FAMILIES
from evolve.problems.ibp.seeding import build_input, integrals_in_sector, pool_system


class Target(NamedTuple):
    family: str
    integrals: list[tuple[int, ...]]
    point_seed: int = 7  # which random point of the kinematics the reduction runs at
    bounded: bool = False  # cap an order at the standard seeding's equations and 8x its work
    lorentz: bool = False  # each seed gives the Lorentz-invariance equations too


TARGETS: dict[str, Target] = {
    # Box: every top-sector integral with r = 6 (or 7), plus the triangle (D1 D2 D3) with one power of D4
    # in the numerator, so that s = 1 seeds are needed.
    "box": Target("box", integrals_in_sector(4, 0b1111, 6, 0) + [(1, 1, 1, -1)]),
    "box_r7": Target("box", integrals_in_sector(4, 0b1111, 7, 0) + [(1, 1, 1, -1)]),
    # Kite: every top-sector integral with r = 6, plus the bubble squared with (k1 - k2)^2 upstairs.
    "kite": Target("kite", integrals_in_sector(5, 0b11111, 6, 0) + [(1, 1, 1, 1, -1)]),
    # The paper's benchmark: I(1,1,1,1,1,1,-3) of the triangle-box (davidshih17/RL_IBPreduction_claude,
    # scripts/kira/jobs_111111m3.yaml), IBP and Lorentz-invariance equations (as in Kira, less its symmetries),
    # at the evolving point and at another one; and with the IBP equations alone.
    "trianglebox": Target("trianglebox", [(1, 1, 1, 1, 1, 1, -3)], bounded=True, lorentz=True),
    "trianglebox_point2": Target("trianglebox", [(1, 1, 1, 1, 1, 1, -3)], point_seed=11, bounded=True, lorentz=True),
    "trianglebox_ibp_only": Target("trianglebox", [(1, 1, 1, 1, 1, 1, -3)], bounded=True),
}
SPLITS = {"train": ("box",), "test": ("box_r7", "kite")}
TRIANGLEBOX_SPLITS = {"train": ("trianglebox",), "test": ("trianglebox_point2", "trianglebox_ibp_only")}


def problem_input(name: str) -> dict:
    """Return the plain-data problem of a named input (cached per process; a fresh copy each call)."""
    target = TARGETS[name]
    return build_input(FAMILIES[target.family], target.integrals, target.point_seed, target.bounded, target.lorentz)


def score_order(problem: dict, output: Sequence) -> float:
    """Return minus the equations a seed order needs to reduce the targets (ValueError: not an order of the pool).

    The seeds go in, in the order given, until every target reduces or the
    problem's cap on equations (or on elimination work) is reached; then
    the score is minus the cap times (1 + the unreduced targets).
    """
    n = len(problem["candidates"])
    if not isinstance(output, list | tuple) or len(output) != n:
        raise ValueError(f"expected an order of the {n} candidate seeds, got {type(output).__name__}"
                         + (f" of length {len(output)}" if isinstance(output, list | tuple) else ""))
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in output):
        raise ValueError(f"an order holds seed positions 0..{n - 1}")
    if len(set(output)) != n:
        raise ValueError("a seed appears twice in the order")
    found = pool_system(problem).prefix(output, problem["targets"], cap=problem["cap_equations"],
                                        budget=problem["work_budget"])
    if found.unreduced:
        return -float(problem["cap_equations"] * (1 + found.unreduced))
    return -float(found.equations)


def equations_report(inputs: Mapping[str, dict], scores: Mapping[str, float]) -> dict[str, Any]:
    """The metrics: equations used per input ("not reduced" past the cap) next to the full standard seeding."""
    used = {name: int(-score) if -score <= inputs[name]["cap_equations"] else "not reduced"
            for name, score in scores.items()}
    return {"equations": used, "standard_seeding": {name: inputs[name]["standard_equations"] for name in scores}}


def rule_seeds(problem: dict, slack: int = 0) -> list[int]:
    """Return the pool positions of the dot-free seeds with s <= s_target - (t_target - t) + slack.

    With no slack this is the improved (Usovitsch) seeding rule as we read
    it: 92 seeds on the triangle-box, the paper's reported count.
    """
    tt, st = problem["t_target"], problem["s_target"]
    return [i for i, (t, _, s, dots, _) in enumerate(problem["features"]) if dots == 0 and s <= st - (tt - t) + slack]


def smallest_certified(problem: dict) -> list[int]:
    """Return a small list of pool positions whose seeds reduce the targets, each one needed (greedy pruning).

    Start from the rule above (slack 0), add the slack-1 seeds in Laporta's
    order until the targets reduce, then drop seeds one at a time (the
    added ones first, heaviest first, then the rule's, heaviest first),
    keeping a drop whenever the targets still reduce. No seed of the result
    can be dropped alone; a smaller list may exist.
    """
    system, targets = pool_system(problem), problem["targets"]
    rule = rule_seeds(problem)
    start = rule + [i for i in rule_seeds(problem, 1) if i not in set(rule)]
    found = system.prefix(start, targets)
    if found.unreduced:
        raise ValueError("the rule's seeds with one more numerator do not reduce the targets")
    keep = start[: found.seeds]
    for i in sorted(keep[len(rule):], reverse=True) + sorted(rule, reverse=True):
        trial = [j for j in keep if j != i]
        if system.prefix(trial, targets).unreduced == 0:
            keep = trial
    return keep
