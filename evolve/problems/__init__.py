"""Built-in problems: spec files shipped inside the package.

Each built-in is an ordinary spec file (see `evolve.spec`) that a user can
copy and edit; `evolve problems` lists them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTINS: dict[str, str] = {
    "bin_packing_or": "Online bin packing, OR-Library sets OR1-OR4 (FunSearch)",
    "bin_packing_weibull": "Online bin packing, Weibull 5k (FunSearch)",
    "cap_set": "Large cap sets in Z_3^n by a greedy priority, n = 8 (FunSearch)",
    "circle_packing": "26 circles in the unit square, maximize the sum of radii (AlphaEvolve)",
    "oscillator1": "Equation of a damped nonlinear driven oscillator, a(x, v) (LLM-SR)",
    "oscillator2": "Equation of a damped nonlinear oscillator with time-dependent forcing, a(t, x, v) (LLM-SR)",
    "bactgrow": "Equation of E. coli growth rate, db(b, s, temp, pH) (LLM-SR)",
    "stressstrain": "Equation of aluminium stress, stress(strain, temp) (LLM-SR)",
    "pendulum": "Equation of a damped driven pendulum, scored by integrating trajectories",
    "ibp_seeding": "Which Laporta seeds reduce Feynman integrals with the fewest IBP equations (arXiv:2502.05121)",
    "ibp_trianglebox": "IBP seeding on the paper's two-loop triangle-box, target I(1,1,1,1,1,1,-3) (arXiv:2502.05121)",
}


def builtin_path(name: str) -> Path:
    """Return the spec file of a built-in problem."""
    if name not in BUILTINS:
        raise KeyError(name)
    return Path(str(resources.files("evolve.problems").joinpath(f"{name}.py")))
