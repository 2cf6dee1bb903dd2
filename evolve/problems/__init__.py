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
}


def builtin_path(name: str) -> Path:
    """Return the spec file of a built-in problem."""
    if name not in BUILTINS:
        raise KeyError(name)
    return Path(str(resources.files("evolve.problems").joinpath(f"{name}.py")))
