"""The paper's benchmark: Laporta seeds for the two-loop triangle-box IBP reduction (arXiv:2502.05121).

von Hippel & Wilhelm evolved seeding rules for the family of their eq. 2.2:
two loops, three off-shell legs (p3 = p1 + p2, p_i^2 = m_i), massless lines
D1 = k1^2, D2 = k2^2, D3 = (k1 + k2)^2, D4 = (k1 + p1)^2, D5 = (k2 + p3)^2,
D6 = (k2 - p1)^2 and the irreducible numerator D7 = (k1 + p3)^2. The target
is I(1,1,1,1,1,1,-3) (top sector, r = 6, s = 3), which reduces to 16 master
integrals (their eq. 2.5). The family and target as transcribed in the
public repository davidshih17/RL_IBPreduction_claude (branch phase2).

The same skeleton as `ibp_seeding` (see there): the evolved `priority`
scores each candidate seed (the standard seeds with r <= 7 and s <= 4:
26,425), the skeleton returns the order, and the trusted scorer eliminates
the seeds' equations in that order until the target reduces. Each seed
gives its 8 IBP equations and the family's one Lorentz-invariance equation,
as Kira would (Kira also uses the family's symmetries; this engine does
not). An order is cut at the full standard seeding's size (6,764 seeds,
60,876 equations) and at 8 times its elimination work: a rule is scored
only if it beats Laporta's. Score: minus the equations used; if the target
does not reduce within the cap, minus twice the cap.

Train: the target at one random point of the kinematics (d, m1, m2, m3 as
field elements); test: the same target at another point, and at the first
point with the IBP equations alone (`trianglebox_ibp_only`, where the
paper's 92-seed rule falls short).
"""

import numpy as np

import evolve

GP_PRIMITIVES = {
    "args": {"indices": "array", "t": "scalar", "r": "scalar", "s": "scalar", "dots": "scalar", "distance": "scalar",
             "t_target": "scalar", "r_target": "scalar", "s_target": "scalar"},
    "returns": "scalar",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "abs", "minimum", "maximum", "min", "max", "sum"],
    "constants": [-2.0, 2.0],
    # Each index of the seed on its own (which propagator carries a dot, which numerator is raised).
    "terminals": {f"indices[{i}]": "scalar" for i in range(7)},
}


@evolve.evolve
def priority(indices: np.ndarray, t: int, r: int, s: int, dots: int, distance: int, t_target: int, r_target: int,
             s_target: int) -> float:
    """Return how early the seed with these indices should be used (higher first)."""
    return 0.0


class InvalidOutput(Exception):
    """The priority function returned something other than one finite number."""


@evolve.run
def seed_order(problem: dict) -> dict:
    """Return the candidate seeds' positions sorted by decreasing priority (stable: the pool is Laporta-ordered)."""
    targets = problem["t_target"], problem["r_target"], problem["s_target"]
    values = []
    for seed, (t, r, s, dots, distance) in zip(problem["candidates"], problem["features"]):
        value = priority(np.array(seed), t, r, s, dots, distance, *targets)
        if np.ndim(value) != 0 or not np.isfinite(value):
            raise InvalidOutput(f"priority must return one finite number, got {value!r:.60}")
        values.append(float(value))
    # The score is a placeholder: the trusted scorer below runs the elimination on this order.
    return {"score": 0.0, "output": sorted(range(len(values)), key=lambda i: -values[i])}


@evolve.baseline
def laporta(indices: np.ndarray, t: int, r: int, s: int, dots: int, distance: int, t_target: int, r_target: int,
            s_target: int) -> float:
    """Laporta's standard seeding: every seed up to the target's r and s first."""
    return float(r <= r_target and s <= s_target)


@evolve.baseline
def usovitsch(indices: np.ndarray, t: int, r: int, s: int, dots: int, distance: int, t_target: int, r_target: int,
              s_target: int) -> float:
    """The improved rule as we read it: no dots, and s <= s_target - (t_target - t) (92 seeds here) first."""
    return float(dots == 0 and s <= s_target - (t_target - t))


@evolve.baseline
def nearest(indices: np.ndarray, t: int, r: int, s: int, dots: int, distance: int, t_target: int, r_target: int,
            s_target: int) -> float:
    """Seeds closest to the target first."""
    return -float(distance)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {name: problem}: the target at the evolving point (train) or at another one (test)."""
    from evolve.problems.ibp.problems import TRIANGLEBOX_SPLITS, problem_input

    return {name: problem_input(name) for name in TRIANGLEBOX_SPLITS[split]}


@evolve.score
def equations_needed(problem: dict, output: list) -> float:
    """Eliminate the seeds in the candidate's order until the target reduces; minus the equations used."""
    from evolve.problems.ibp.problems import score_order

    return score_order(problem, output)


@evolve.metrics
def equations(split: str, inputs: dict, scores: dict) -> dict:
    """Report the equations used next to Laporta's full standard seeding."""
    from evolve.problems.ibp.problems import equations_report

    return equations_report(inputs, scores)
