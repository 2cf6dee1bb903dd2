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
of |negative indices|), distance (L1 distance to the nearest target), and
the targets' largest r and s. The skeleton adds the seeds' equations in
order of decreasing priority (ties: simplest seed first, in Laporta's
ordering) until every target reduces to master integrals (checked by
sparse elimination over a prime field, with d and the kinematic invariants
set to random field elements). Score: minus the number of equations used;
if the targets never reduce, minus the whole pool's equations times (1 +
the number of unreduced targets). A trusted check re-runs the reduction on
the seeds the candidate used.

Train: the massless one-loop box, targets with r = 6 (and a triangle with a
numerator). Test: the box with r = 7, and the two-loop massless propagator
(kite) family.
"""

import numpy as np

import evolve

GP_PRIMITIVES = {
    "args": {"indices": "array", "t": "scalar", "r": "scalar", "s": "scalar", "distance": "scalar",
             "r_target": "scalar", "s_target": "scalar"},
    "returns": "scalar",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "abs", "minimum", "maximum", "min", "max", "sum"],
    "constants": [-2.0, 2.0],
}


@evolve.evolve
def priority(indices: np.ndarray, t: int, r: int, s: int, distance: int, r_target: int, s_target: int) -> float:
    """Return how early the seed with these indices should be used (higher first)."""
    return 0.0


class InvalidOutput(Exception):
    """The priority function returned something other than one finite number."""


def seed_order(problem: dict) -> list:
    """Return the candidate seeds sorted by decreasing priority (stable: the pool is Laporta-ordered)."""
    values = []
    for seed, (t, r, s, distance) in zip(problem["candidates"], problem["features"]):
        value = priority(np.array(seed), t, r, s, distance, problem["r_target"], problem["s_target"])
        if np.ndim(value) != 0 or not np.isfinite(value):
            raise InvalidOutput(f"priority must return one finite number, got {value!r:.60}")
        values.append(float(value))
    order = sorted(range(len(values)), key=lambda i: -values[i])
    return [problem["candidates"][i] for i in order]


@evolve.run
def reduce_targets(problem: dict) -> dict:
    """Return minus the equations the priority order needs to reduce the targets, with the seeds used."""
    engine = {"__name__": "ibp_engine"}
    exec(compile(problem["engine"], "ibp_engine", "exec"), engine)  # the stdlib-only IBP engine
    ordered = seed_order(problem)
    used, unreduced, count = engine["seed_until_reduced"](problem, ordered)
    return {"score": engine["score"](problem, used, unreduced), "output": ordered[:count]}


@evolve.baseline
def laporta(indices: np.ndarray, t: int, r: int, s: int, distance: int, r_target: int, s_target: int) -> float:
    """Laporta's standard seeding: every seed up to the targets' r and s first."""
    return float(r <= r_target and s <= s_target)


@evolve.baseline
def nearest(indices: np.ndarray, t: int, r: int, s: int, distance: int, r_target: int, s_target: int) -> float:
    """Seeds closest to a target first."""
    return -float(distance)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {name: problem}: the box to evolve on; the box with higher powers and the kite to test."""
    from evolve.problems.ibp.problems import SPLITS, problem_input

    return {name: problem_input(name) for name in SPLITS[split]}


@evolve.check
def verify(problem: dict, output: list) -> float:
    """Believe the score only if the seeds used really reduce the targets, with that many equations."""
    from evolve.problems.ibp.problems import check_seeds

    return float(check_seeds(problem, output))


@evolve.metrics
def equations(split: str, inputs: dict, scores: dict) -> dict:
    """Report the equations used per input next to Laporta's full standard seeding."""
    used = {name: -score if -score <= inputs[name]["pool_equations"] else "not reduced" for name, score in scores.items()}
    standard = {name: inputs[name]["standard_equations"] for name in scores}
    return {"equations": used, "standard_seeding": standard}
