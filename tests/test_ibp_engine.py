"""The IBP engine on known facts: master counts, closed forms, what the standard seeding needs.

    .venv/bin/pytest tests/test_ibp_engine.py      # about 5 s
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from evolve.problems.ibp import engine, seeding
from evolve.problems.ibp.families import BOX, BUBBLE, KITE, TRIANGLEBOX
from evolve.problems.ibp.family import derive_lorentz, derive_templates, numeric_templates, symmetry_permutation
from evolve.problems.ibp.problems import problem_input, score_order


def test_the_massless_box_has_three_masters_and_four_zero_bubbles() -> None:
    assert set(seeding.masters(BOX)) == {(1, 1, 1, 1), (1, 0, 1, 0), (0, 1, 0, 1)}  # box, s- and t-bubble
    assert BOX.masters_known == 3
    # Two adjacent lines meet at an on-shell leg: a scaleless bubble. So are the tadpoles.
    adjacent = {0b0011, 0b0110, 0b1100, 0b1001}
    assert adjacent | {0, 1, 2, 4, 8} == set(seeding.zero_sectors(BOX))


def test_the_kite_has_two_masters_up_to_symmetry_as_in_the_literature() -> None:
    found = seeding.masters(KITE)
    # The two sunsets (mirror images) and the one-loop bubble squared.
    assert set(found) == {(1, 0, 0, 1, 1), (0, 1, 1, 0, 1), (1, 1, 1, 1, 0)}
    assert seeding.masters_up_to_symmetry(KITE, found) == KITE.masters_known == 2
    assert seeding.masters_up_to_symmetry(BOX, seeding.masters(BOX)) == 3  # no symmetries declared


def test_symmetries_are_checked_against_the_propagators() -> None:
    assert symmetry_permutation(KITE, {"k1": "k2", "k2": "k1"}) == (1, 0, 3, 2, 4)
    assert symmetry_permutation(KITE, {"k1": "p - k1", "k2": "p - k2"}) == (2, 3, 0, 1, 4)
    with pytest.raises(ValueError, match="outside the family"):
        symmetry_permutation(KITE, {"k1": "k1 + p"})


def _bubble(a1: int, a2: int, d: Fraction, q2: Fraction) -> Fraction:
    """Return I(a1, a2) / I(1, 1) for the massless bubble, from the Γ-function closed form.

    I(a1, a2) = q2^(d/2 - a1 - a2) Γ(a1 + a2 - d/2) Γ(d/2 - a1) Γ(d/2 - a2) / (Γ(a1) Γ(a2) Γ(d - a1 - a2));
    it vanishes when a1 <= 0 or a2 <= 0 (1/Γ at a pole). Ratios of Γ's whose arguments
    differ by integers are rational, so the comparison is exact.
    """
    if a1 <= 0 or a2 <= 0:
        return Fraction(0)

    def gamma_ratio(x: Fraction, n: int) -> Fraction:  # Γ(x + n) / Γ(x)
        out = Fraction(1)
        for i in range(abs(n)):
            out = out * (x + i) if n > 0 else out / (x - 1 - i)
        return out

    h = d / 2
    return (q2 ** (2 - a1 - a2) * gamma_ratio(2 - h, a1 + a2 - 2) * gamma_ratio(h - 1, 1 - a1)
            * gamma_ratio(h - 1, 1 - a2) / (math.factorial(a1 - 1) * math.factorial(a2 - 1))
            / gamma_ratio(d - 2, 2 - a1 - a2))


@pytest.mark.parametrize("perturb", [False, True])
def test_bubble_identities_vanish_on_the_closed_form(perturb: bool) -> None:
    d, q2 = Fraction(37, 7), Fraction(5, 3)  # generic: no Γ at a pole
    templates = numeric_templates(BUBBLE, {"d": d, "q2": q2}, prime=None)
    assert len(templates) == 2  # ∂/∂k · k and ∂/∂k · p
    # The control evaluates the closed form at a wrong d: the identities must then fail.
    closed_d = d + 1 if perturb else d
    residues = []
    for seed in itertools.product(range(-1, 4), repeat=2):
        for template in templates:
            total = sum((c0 + sum(c * a for c, a in zip(cs, seed)))
                        * _bubble(seed[0] + shift[0], seed[1] + shift[1], closed_d, q2)
                        for shift, c0, cs in template)
            residues.append(total)
    assert any(residues) is perturb


def test_bubble_reduction_mod_p_matches_the_closed_form() -> None:
    """The whole path (templates mod p, zero sectors, elimination) reduces I(a1, a2) to c I(1, 1) with c from Γ's."""
    d, q2 = Fraction(37, 7), Fraction(5, 3)
    prime = seeding.PRIME
    zero = seeding.zero_sectors(BUBBLE)
    assert set(zero) == {0, 1, 2}  # massless tadpoles vanish
    problem = {"prime": prime, "n": 2, "templates": numeric_templates(BUBBLE, {"d": d, "q2": q2}, prime),
               "zero_sectors": sorted(zero), "_zero": set(zero)}
    system = engine.System(prime)
    for seed in seeding.seeds(2, [0b11], 6, 2):
        for row in engine.equations(problem, seed):
            system.add(row)
    for target in [(2, 1), (1, 3), (2, 2), (3, 2), (4, 1)]:
        expected = _bubble(*target, d, q2)
        assert system.express(target) == {(1, 1): expected.numerator * pow(expected.denominator, -1, prime) % prime}
    assert seeding.masters(BUBBLE) == ((1, 1),)


def test_templates_are_derived_once_per_family() -> None:
    assert derive_templates(BOX) is derive_templates(BOX)
    assert len(derive_templates(BOX)) == 4 and len(derive_templates(KITE)) == 6  # L * (L + E)


@pytest.mark.parametrize("broken", [False, True])
def test_lorentz_identities_follow_from_the_ibp_ones(broken: bool) -> None:
    """Each Lorentz-invariance equation of the box is a combination of its IBP equations (Lee 2008): it adds
    nothing to a system that holds enough IBP seeds. The control flips one term's sign: that one does."""
    assert len(derive_lorentz(BOX)) == 3 and not derive_lorentz(KITE) and len(derive_lorentz(TRIANGLEBOX)) == 1
    prime, zero = seeding.PRIME, seeding.zero_sectors(BOX)
    point = seeding.random_point(BOX, 3)
    templates = numeric_templates(BOX, point, prime, lorentz=True)
    ibp, lorentz = templates[:4], templates[4:]
    assert numeric_templates(BOX, point, prime) == ibp and len(lorentz) == 3
    if broken:
        lorentz = [[[shift, -c0 % prime, [-c % prime for c in cs]] if k == 0 else [shift, c0, cs]
                    for k, (shift, c0, cs) in enumerate(t)] for t in lorentz]
    system = engine.System(prime)
    live = [m for m in seeding.subsectors(BOX.lines_mask) if m not in zero]
    for seed in seeding.seeds(BOX.n, live, None, 3, dots=3):
        for row in engine.equations({"prime": prime, "templates": ibp, "zero_sectors": sorted(zero)}, seed):
            system.add(row)
    problem = {"prime": prime, "templates": lorentz, "zero_sectors": sorted(zero)}
    new = [system.add(row) for seed in seeding.seeds(BOX.n, live, None, 1, dots=1)
           for row in engine.equations(problem, seed)]
    assert len(new) > 100 and any(new) is broken


@pytest.mark.parametrize("name", ["box", "kite"])
def test_standard_seeding_reduces_and_fails_without_the_seeds_it_needs(name: str) -> None:
    problem = problem_input(name)
    targets = [tuple(t) for t in problem["targets"]]
    standard = seeding.standard_seeds(BOX if name == "box" else KITE, targets, problem["zero_sectors"])
    used, unreduced = engine.count_unreduced(problem, standard)
    assert unreduced == 0 and used == problem["standard_equations"]
    # Without the top sector's seeds the top-sector targets lead no equation: unreduced.
    top = max(engine.sector(t) for t in targets)
    needed = [s for s in standard if engine.sector(s) == top]
    rest = [s for s in standard if s not in needed]
    assert needed and engine.count_unreduced(problem, rest)[1] > 0
    index = {tuple(c): i for i, c in enumerate(problem["candidates"])}
    assert seeding.pool_system(problem).prefix([index[s] for s in rest], targets).unreduced > 0  # the kernel agrees
    # In Laporta's order the standard seeds reduce the targets before the last one: drop one
    # seed of that prefix and the check fails.
    _, left, count = engine.seed_until_reduced(problem, standard)
    assert left == 0 and count <= len(standard)
    assert engine.count_unreduced(problem, standard[: count - 1])[1] > 0


def test_the_reduction_is_what_was_claimed() -> None:
    """With every candidate seed, each box target reduces to a combination of masters only."""
    problem = problem_input("box")
    system = engine.System(problem["prime"])
    probe = dict(problem, _zero=set(problem["zero_sectors"]))
    for seed in problem["candidates"]:
        for row in engine.equations(probe, tuple(seed)):
            system.add(row)
    masters = {tuple(m) for m in problem["masters"]}
    for target in problem["targets"]:
        expr = system.express(tuple(target))
        assert expr and set(expr) <= masters


def test_the_scorer_rejects_what_is_not_an_order_of_the_pool() -> None:
    problem = problem_input("box")
    n = len(problem["candidates"])
    for output in ([[9, 9, 9, 9]], [*range(n - 1), 0], [*range(n - 1), n], [True, *range(1, n)]):
        with pytest.raises(ValueError):
            score_order(problem, output)


def _orders(problem: dict) -> dict[str, list[int]]:
    """Seed orders of the pool: Laporta's, the standard seeds first, nearest first, two random ones."""
    pool = [tuple(c) for c in problem["candidates"]]
    rt, st = problem["r_target"], problem["s_target"]
    rng = np.random.default_rng(0)
    return {
        "laporta": list(range(len(pool))),
        "standard first": sorted(range(len(pool)), key=lambda i: -float(engine.weight(pool[i])[2] <= rt
                                                                        and engine.weight(pool[i])[3] <= st)),
        "nearest": sorted(range(len(pool)), key=lambda i: problem["features"][i][-1]),
        "random 0": [int(i) for i in rng.permutation(len(pool))],
        "random 1": [int(i) for i in rng.permutation(len(pool))],
    }


@pytest.mark.parametrize("name", ["box", "kite"])
def test_the_compiled_kernel_counts_what_the_pure_python_engine_counts(name: str) -> None:
    """Box and kite: for every order the kernel's prefix is the pure engine's, equation for equation."""
    problem = problem_input(name)
    system = seeding.pool_system(problem)
    for label, order in _orders(problem).items():
        seeds_in_order = [tuple(problem["candidates"][i]) for i in order]
        used, unreduced, count = engine.seed_until_reduced(problem, seeds_in_order)
        found = system.prefix(order, problem["targets"])
        assert (found.equations, found.unreduced, found.seeds) == (used, unreduced, count), label
        assert score_order(problem, order) == engine.score(problem, used, unreduced), label
        # Cut short of what it needs, the same order does not reduce the targets.
        if count > 1:
            short = system.prefix(order, problem["targets"], cap=used - 1 - len(engine.equations(
                dict(problem, _zero=set(problem["zero_sectors"])), seeds_in_order[count - 1])))
            assert short.unreduced > 0, label


# The 16 masters of the triangle-box as listed in davidshih17/RL_IBPreduction_claude,
# topology_input/trianglebox/masters (the paper's eq. 2.5), D7 (the numerator) last.
TRIANGLEBOX_MASTERS = {
    (0, 1, 1, 1, 0, 0, 0), (1, 0, 1, 0, 1, 0, 0), (1, 1, 0, 1, 1, 0, 0), (0, 0, 1, 1, 1, 0, 0),
    (1, 0, 1, 1, 1, 0, 0), (1, -1, 1, 1, 1, 0, 0), (0, 1, 1, 1, 1, 0, 0), (-1, 1, 1, 1, 1, 0, 0),
    (1, 1, 1, 1, 1, 0, 0), (1, 0, 1, 0, 0, 1, 0), (1, 1, 0, 1, 0, 1, 0), (1, 0, 1, 0, 1, 1, 0),
    (1, -1, 1, 0, 1, 1, 0), (1, 0, 0, 1, 1, 1, 0), (1, 1, 0, 1, 1, 1, 0), (1, 0, 1, 1, 1, 1, 0),
}


def test_the_triangle_box_has_the_papers_sixteen_masters_and_its_target_reduces() -> None:
    assert TRIANGLEBOX.irreducible == (6,) and TRIANGLEBOX.lines_mask == 0b0111111
    zero = seeding.zero_sectors(TRIANGLEBOX)
    assert all(m < 64 for m in zero) and len(zero - {0}) == 40  # 40 of the 63 subsectors vanish
    assert set(seeding.masters(TRIANGLEBOX)) == TRIANGLEBOX_MASTERS == set(seeding.masters(TRIANGLEBOX, top=0b111111))
    problem = problem_input("trianglebox")
    assert {tuple(m) for m in problem["masters"]} == TRIANGLEBOX_MASTERS
    assert (problem["t_target"], problem["r_target"], problem["s_target"]) == (6, 6, 3)
    # 9 equations per seed: 8 IBP relations and the one Lorentz-invariance identity.
    assert problem["lorentz"] and (problem["standard_seeds"], problem["standard_equations"]) == (6764, 60876)
    assert len(problem["candidates"]) == 26425 and problem["pool_equations"] == 26425 * 9
    ibp_only = problem_input("trianglebox_ibp_only")
    assert not ibp_only["lorentz"] and (ibp_only["standard_equations"], ibp_only["pool_equations"]) == (54112, 211400)
    assert ibp_only["masters"] == problem["masters"] and ibp_only["candidates"] == problem["candidates"]
    with pytest.raises(ValueError, match="irreducible numerator"):
        seeding.build_input(TRIANGLEBOX, [(1, 1, 1, 1, 1, 1, 1)])
