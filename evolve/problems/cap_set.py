"""Large cap sets in Z_3^n (FunSearch, Nature 2023).

A cap set is a set of vectors in Z_3^n with no three on a line (no distinct
a, b, c with a + b + c = 0 mod 3). The entry builds one greedily, as
FunSearch does: every vector gets a priority from the evolved
`priority(el, n)`, then vectors are taken in order of decreasing priority
(ties: lower base-3 index first), skipping any that would complete a line.
Score: the size of the set, after a trusted check that it is a cap set.

`el` is one vector as a tuple of n ints (numpy int32, as FunSearch passes
`tuple(vector)`), so FunSearch's published programs (`el.count(0)`,
`np.array(el)`) run unchanged. Train: n = 8 (change it with `--inputs
dims.json` holding e.g. {"n6": 6}). Test: n = 1..8.
"""

import itertools

import numpy as np

import evolve

# `el` is a tuple: the GP proposer's array operators see it as `np.array(el)`.
GP_PRIMITIVES = {
    "args": {"n": "scalar"},
    "returns": "scalar",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "abs", "mod3", "minimum", "maximum",
                  "min", "max", "mean", "sum"],
    "constants": [-2.0, 2.0],
    "terminals": {"np.array(el)": "array", "np.arange(n)": "array"},
}


class InvalidOutput(Exception):
    """The priority function returned something other than one finite number."""


def build_cap_set(n: int) -> np.ndarray:
    """Return a cap set in Z_3^n, shape (size, n), built greedily by priority."""
    vectors = np.array(list(itertools.product((0, 1, 2), repeat=n)), dtype=np.int32).reshape(-1, n)
    powers = 3 ** np.arange(n - 1, -1, -1)  # vectors[i] @ powers == i
    priorities = np.empty(len(vectors))
    for i, vector in enumerate(vectors):
        value = priority(tuple(vector), n)
        if np.ndim(value) != 0 or not np.isfinite(value):
            raise InvalidOutput(f"priority must return one finite number, got {value!r:.60}")
        priorities[i] = value
    blocked = np.zeros(len(vectors), dtype=bool)
    members = np.empty((0, n), dtype=np.int32)
    for i in np.argsort(-priorities, kind="stable"):
        if blocked[i]:
            continue
        # Every line through the new vector and a member ends in a vector that is now excluded.
        blocked[((-members - vectors[i]) % 3) @ powers] = True
        blocked[i] = True
        members = np.concatenate([members, vectors[i : i + 1]])
    return members


@evolve.run
def evaluate(n: int) -> dict:
    """Return the size of the cap set the priority builds, with the set for the check."""
    capset = build_cap_set(n)
    return {"score": len(capset), "output": capset}


@evolve.evolve
def priority(el: tuple[int, ...], n: int) -> float:
    """Return how much the vector `el` should be preferred for the cap set."""
    return 0.0


@evolve.baseline
def quadric(el: tuple[int, ...], n: int) -> float:
    """Prefer the vectors whose sum of squares is 1 mod 3."""
    v = np.array(el)
    return float(np.mod(np.sum(v * v), 3.0) == 1.0)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {name: n}: n = 8 to evolve on, n = 1..8 to test."""
    return {"train": {"n8": 8}, "test": {f"n{n}": n for n in range(1, 9)}}[split]


@evolve.check
def verify(n: int, output: list) -> float:
    """Believe the size only if the output is a cap set in Z_3^n."""
    from evolve.problems.cap_set_check import cap_set_size

    return float(cap_set_size(n, output))


@evolve.metrics
def sizes(split: str, inputs: dict, scores: dict) -> dict:
    """Report the size per dimension next to the largest cap set known."""
    from evolve.problems.cap_set_check import BEST_KNOWN

    known = {name: BEST_KNOWN[inputs[name]] for name in scores if inputs[name] in BEST_KNOWN}
    return {"size": dict(scores), "best_known": known}
