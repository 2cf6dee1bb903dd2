"""Circle packing: n = 26 circles in the unit square, maximize the sum of radii (AlphaEvolve).

The evolved `construct_packing(n)` returns the centres, shape (n, 2), and
radii, shape (n,). Score: the sum of radii, believed only after a trusted
check that every circle lies in the square and no two overlap, decided
exactly on the floats given, with no tolerance (`circle_packing_check.py`:
touching is allowed, one ulp of overlap is not); an invalid packing is an
invalid-output failure that says which circles are at fault.

Helpers a constructor may call: `max_radii(centers)` gives the largest
radii for fixed centres (a linear program), `polish(centers, radii)` moves
centres and radii together by SLSQP. Train: n = 26. Test: n = 26 and 32.
"""

import numpy as np

import evolve

TOLERANCE = 0.0  # the trusted check allows no slack (it decides in exact arithmetic)
MARGIN = 1e-12  # make_feasible's final shrink, relative, so that float round-off cannot overlap


class InvalidOutput(Exception):
    """The constructor's packing has the wrong shape, or circles overlap or stick out."""


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def make_feasible(centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Shrink radii until the packing is valid in floating point (walls first, then each pair), then by MARGIN.

    The last shrink (relative MARGIN, and 1e-14 absolute) leaves room for the
    round-off of the floating-point test, so that the exact check passes too.
    """
    radii = np.clip(radii, 0.0, None)
    radii = np.minimum(radii, np.min(np.concatenate([centers, 1.0 - centers], axis=1), axis=1).clip(0.0))
    i, j = _pairs(len(radii))
    dist = np.hypot(*(centers[i] - centers[j]).T)
    for _ in range(len(radii)):
        excess = radii[i] + radii[j] - dist
        bad = np.flatnonzero(excess > 0)
        if not len(bad):
            break
        k = bad[np.argmax(excess[bad])]
        scale = dist[k] / (radii[i[k]] + radii[j[k]]) * (1 - 1e-12)
        radii[i[k]] *= scale
        radii[j[k]] *= scale
    else:  # many small violations (optimizer round-off): shrink every circle in one step
        radii *= 1 - 1e-9
        while (radii[i] + radii[j] - dist).max(initial=0.0) > 0:
            radii *= 1 - 1e-9
    return np.maximum(radii * (1 - MARGIN) - 1e-14, 0.0)


def max_radii(centers: np.ndarray) -> np.ndarray:
    """Return the radii of largest sum for fixed centres (a linear program), made exactly valid."""
    from scipy.optimize import linprog

    n = len(centers)
    i, j = _pairs(n)
    rows = np.zeros((len(i), n))
    rows[np.arange(len(i)), i] = 1.0
    rows[np.arange(len(i)), j] = 1.0
    wall = np.min(np.concatenate([centers, 1.0 - centers], axis=1), axis=1).clip(0.0)
    result = linprog(-np.ones(n), A_ub=rows, b_ub=np.hypot(*(centers[i] - centers[j]).T),
                     bounds=list(zip(np.zeros(n), wall)), method="highs")
    radii = result.x if result.status == 0 else np.zeros(n)
    return make_feasible(centers, radii)


def polish(centers: np.ndarray, radii: np.ndarray, iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Improve a packing by SLSQP over centres and radii together; return a valid packing."""
    from scipy.optimize import minimize

    n = len(radii)
    i, j = _pairs(n)

    def split(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return z[: 2 * n].reshape(n, 2), z[2 * n :]

    def constraints(z: np.ndarray) -> np.ndarray:
        c, r = split(z)
        d = np.hypot(*(c[i] - c[j]).T)
        return np.concatenate([d - r[i] - r[j], c[:, 0] - r, 1 - c[:, 0] - r, c[:, 1] - r, 1 - c[:, 1] - r])

    def jacobian(z: np.ndarray) -> np.ndarray:
        c, r = split(z)
        diff = c[i] - c[j]
        d = np.maximum(np.hypot(*diff.T), 1e-12)
        jac = np.zeros((len(i) + 4 * n, 3 * n))
        rows = np.arange(len(i))
        jac[rows, 2 * i], jac[rows, 2 * i + 1] = diff[:, 0] / d, diff[:, 1] / d
        jac[rows, 2 * j], jac[rows, 2 * j + 1] = -diff[:, 0] / d, -diff[:, 1] / d
        jac[rows, 2 * n + i] = jac[rows, 2 * n + j] = -1.0
        k, base = np.arange(n), len(i)
        for block, (axis, sign) in enumerate(((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0))):
            jac[base + block * n + k, 2 * k + axis] = sign
            jac[base + block * n + k, 2 * n + k] = -1.0
        return jac

    z0 = np.concatenate([centers.ravel(), radii])
    bounds = [(0.0, 1.0)] * (2 * n) + [(0.0, 0.5)] * n
    with np.errstate(all="ignore"):
        result = minimize(lambda z: -z[2 * n :].sum(), z0, jac=lambda z: np.r_[np.zeros(2 * n), -np.ones(n)],
                          bounds=bounds, constraints=[{"type": "ineq", "fun": constraints, "jac": jacobian}],
                          method="SLSQP", options={"maxiter": iterations})
    c, _ = split(result.x if np.isfinite(result.x).all() else z0)
    c = np.clip(c, 0.0, 1.0)
    return c, max_radii(c)


@evolve.run
def evaluate(n: int) -> dict:
    """Return the sum of radii of the constructor's packing, with the packing for the check."""
    centers, radii = construct_packing(n)
    centers, radii = np.asarray(centers, dtype=float), np.asarray(radii, dtype=float)
    if centers.shape != (n, 2) or radii.shape != (n,) or not (np.isfinite(centers).all() and np.isfinite(radii).all()):
        raise InvalidOutput(f"expected finite centres ({n}, 2) and radii ({n},), got {centers.shape} and {radii.shape}")
    outside = np.maximum(radii[:, None] - centers, centers + radii[:, None] - 1.0).max()
    if (radii < 0).any() or outside > TOLERANCE:
        raise InvalidOutput("a circle has a negative radius or sticks out of the unit square")
    i, j = _pairs(n)
    overlap = radii[i] + radii[j] - np.hypot(*(centers[i] - centers[j]).T)
    if overlap.max() > TOLERANCE:
        k = int(np.argmax(overlap))
        raise InvalidOutput(f"circles {i[k]} and {j[k]} overlap by {overlap[k]:.3g}")
    return {"score": float(np.sum(radii)), "output": {"centers": centers, "radii": radii}}


@evolve.evolve
def construct_packing(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return centres (n, 2) and radii (n,) of n disjoint circles in the unit square."""
    # Concentric rings around the middle (1 + 8 + the rest), then polished by SLSQP.
    counts = [1, 8, n - 9]
    spacing = [0.0, 0.22, 0.42]
    points: list[list[float]] = []
    for count, ring in zip(counts, spacing):
        angles = 2 * np.pi * np.arange(count) / max(count, 1)
        points += [[0.5 + ring * np.cos(a), 0.5 + ring * np.sin(a)] for a in angles]
    centers = np.clip(np.array(points), 0.01, 0.99)
    return polish(centers, max_radii(centers))


@evolve.baseline
def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A square grid of ceil(sqrt(n))^2 equal cells, filled row by row, largest radii that fit."""
    side = int(np.ceil(np.sqrt(n)))
    cells = np.arange(n)
    centers = np.stack([(cells % side + 0.5) / side, (cells // side + 0.5) / side], axis=1)
    return centers, max_radii(centers)


@evolve.baseline
def rings(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's rings with the largest radii that fit, not polished."""
    counts, spacing, points = [1, 8, n - 9], [0.0, 0.22, 0.42], []
    for count, ring in zip(counts, spacing):
        angles = 2 * np.pi * np.arange(count) / max(count, 1)
        points += [[0.5 + ring * np.cos(a), 0.5 + ring * np.sin(a)] for a in angles]
    centers = np.clip(np.array(points), 0.01, 0.99)
    return centers, max_radii(centers)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {name: n}: 26 circles to evolve on; 26 and 32 to test."""
    return {"train": {"n26": 26}, "test": {"n26": 26, "n32": 32}}[split]


@evolve.check
def verify(n: int, output: dict) -> float:
    """Believe the sum of radii only if the circles lie in the square and do not overlap."""
    from evolve.problems.circle_packing_check import sum_of_radii

    return sum_of_radii(n, output)


@evolve.metrics
def best_known(split: str, inputs: dict, scores: dict) -> dict:
    """Report the sum of radii next to the best known (AlphaEvolve's)."""
    from evolve.problems.circle_packing_check import BEST_KNOWN

    known = {name: BEST_KNOWN[inputs[name]] for name in scores if inputs[name] in BEST_KNOWN}
    return {"sum_of_radii": dict(scores), "best_known": known}
