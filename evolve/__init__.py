"""evoloop: island-model evolutionary program search.

Problem specs mark their functions with these decorators::

    import evolve

    @evolve.run
    def evaluate(instance) -> float: ...

    @evolve.evolve
    def priority(item: float, bins: np.ndarray) -> np.ndarray: ...

The decorators do nothing at run time; the spec loader finds them in the
source (FunSearch's `@funsearch.run` / `@funsearch.evolve`, even commented
out, are found the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__version__ = "0.1.0"

F = TypeVar("F", bound=Callable)


def _marker(role: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, "__evolve_role__", role)
        return fn

    mark.__name__ = role
    mark.__doc__ = f"Mark a spec function as the `{role}` role (no effect at run time)."
    return mark


run = _marker("run")  # the entry point: one input -> one number
evolve = _marker("evolve")  # the function evolution rewrites
inputs = _marker("inputs")  # loader: split name -> {input name: value}
baseline = _marker("baseline")  # an alternative to the evolved function, for `evolve baseline`
metrics = _marker("metrics")  # trusted: (split, inputs, scores) -> extra figures to report
check = _marker("check")  # trusted: (input, raw output) -> the score to believe
score = _marker("score")  # trusted: (input, raw output) -> the score (the entry's claim is a placeholder)

# The library API (evolve.runs), imported on first use: a spec's `import evolve` stays light in the sandbox.
_API = {"start": "evolve.runs", "resume": "evolve.runs", "load": "evolve.runs", "Run": "evolve.runs",
        "RunConfig": "evolve.config", "Status": "evolve.status"}


def __getattr__(name: str) -> object:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'evolve' has no attribute {name!r}")
