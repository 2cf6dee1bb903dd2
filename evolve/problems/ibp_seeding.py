"""Which Laporta seeds to use for a Feynman-integral IBP reduction (von Hippel & Wilhelm, arXiv:2502.05121).

Integration-by-parts identities, written for a "seed" integral I(a_1..a_N),
are linear relations between that integral and ones with shifted indices
(a_i > 0: propagator powers, a_i <= 0: numerators). Laporta's algorithm
writes them for many seeds and solves the linear system, so that the target
integrals come out as combinations of a few master integrals. Which seeds to
take is a heuristic: too few and the targets do not reduce, too many and the
system is needlessly large.

The evolved `priority` scores each candidate seed from its indices and
features: t (lines: positive indices), r (sum of positive indices), s (sum
of |negative indices|), dots (r - t), distance (L1 distance to the nearest
target), and the targets' largest t, r and s. The skeleton sorts the
candidate seeds by decreasing priority (ties: simplest seed first, in
Laporta's ordering) and returns that order; nothing else runs in the
sandbox. The trusted scorer then adds the seeds' equations in that order
until every target reduces to master integrals (a compiled sparse
elimination over a prime field, with d and the kinematic invariants set to
random field elements; `evolve/problems/ibp/kernel.py`). Score: minus the
number of equations used; if the targets do not reduce within the input's
cap, minus the cap times (1 + the number of unreduced targets).

Train: the massless one-loop box, targets with r = 6 (and a triangle with a
numerator). Test: the box with r = 7, and the two-loop massless propagator
(kite) family.
"""

import numpy as np

import evolve

GP_PRIMITIVES = {
    "args": {"indices": "array", "t": "scalar", "r": "scalar", "s": "scalar", "dots": "scalar", "distance": "scalar",
             "t_target": "scalar", "r_target": "scalar", "s_target": "scalar"},
    "returns": "scalar",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "abs", "minimum", "maximum", "min", "max", "sum"],
    "constants": [-2.0, 2.0],
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
    """Laporta's standard seeding: every seed up to the targets' r and s first."""
    return float(r <= r_target and s <= s_target)


@evolve.baseline
def nearest(indices: np.ndarray, t: int, r: int, s: int, dots: int, distance: int, t_target: int, r_target: int,
            s_target: int) -> float:
    """Seeds closest to a target first."""
    return -float(distance)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {name: problem}: the box to evolve on; the box with higher powers and the kite to test."""
    from evolve.problems.ibp.problems import SPLITS, problem_input

    return {name: problem_input(name) for name in SPLITS[split]}


@evolve.score
def equations_needed(problem: dict, output: list) -> float:
    """Eliminate the seeds in the candidate's order until the targets reduce; minus the equations used."""
    from evolve.problems.ibp.problems import score_order

    return score_order(problem, output)


@evolve.metrics
def equations(split: str, inputs: dict, scores: dict) -> dict:
    """Report the equations used per input next to Laporta's full standard seeding."""
    from evolve.problems.ibp.problems import equations_report

    return equations_report(inputs, scores)
