"""`evolve doctor`: which isolation layers this machine allows, each proven by a small hostile probe.

    report = diagnose()
    print(report.layers.describe())
    for probe in report.probes: print(probe.name, probe.contained, probe.outcome)

Detection alone says what the kernel accepted; the probes show what a
candidate actually meets: one real sandbox worker runs a few programs that
try to escape, and each says whether it was contained and how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sandbox.isolation import IsolationConfig, Layers
from sandbox.pool import SandboxPool
from sandbox.result import Evaluation, FailureKind, Limits

_HEADER = "import os, socket\n\ndef evaluate(x):\n"


@dataclass(frozen=True)
class Probe:
    """One escape attempt (or one thing a candidate must be able to do) and how it ended."""

    name: str
    layer: str  # the layer expected to stop it (or to allow it)
    contained: bool  # as it should be: an escape stopped, an allowed action done
    outcome: str  # "forbidden: killed by SIGSYS ...", "refused: errno 13", "went through", ...
    allowed: bool = False  # a capability probe: it must go through (importing the standard library)


@dataclass(frozen=True)
class Report:
    layers: Layers
    probes: tuple[Probe, ...]

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers.to_json(), "probes": [asdict(p) for p in self.probes]}


def _attempt(statement: str) -> str:
    """A body that returns -errno when `statement` is refused, 1.0 when it goes through."""
    return f"    try:\n        {statement}\n    except OSError as e:\n        return -float(e.errno or 1)\n    return 1.0\n"


# A module neither the worker nor numpy/scipy imports: the candidate loads it from disk, as its own uid.
_IMPORT_STDLIB = (
    "    import sys, importlib\n"
    "    name = next(m for m in ('wave', 'sched', 'glob', 'csv') if m not in sys.modules)\n"
    "    importlib.import_module(name)\n    return 1.0\n"
)
# Capability probes: what candidates must be able to do; they pass when they go through.
ALLOWED: dict[str, tuple[str, str]] = {
    "import the standard library": ("Python reachable by the candidates' uid", _IMPORT_STDLIB),
}
# name -> (layer expected to stop it, evaluate body)
PROBES: dict[str, tuple[str, str]] = {
    "fork a process": ("seccomp", "    os.fork()\n    return 1.0\n"),
    "open a socket": ("seccomp", _attempt("socket.socket()")),
    "read outside the Python install": ("landlock", _attempt("open('/etc/hostname').read()")),
    "write outside scratch": ("landlock / read-only root", _attempt("open('/var/tmp/evoloop-doctor', 'w').write('x')")),
    "run as root": ("privilege drop", "    return 1.0 if os.getuid() == 0 else -1.0\n"),
    "allocate 100 GB": ("rlimits", "    return float(len(bytearray(100 << 30)))\n"),
}


def _judge(evaluation: Evaluation) -> tuple[bool, str]:
    """Tell whether a probe's run shows containment, and describe its outcome."""
    if evaluation.failure in (FailureKind.FORBIDDEN, FailureKind.MEMORY):
        return True, f"{evaluation.failure.value}: {evaluation.error}"
    if not evaluation.ok:
        return False, f"{_kind(evaluation)}: {evaluation.error}"
    [score] = evaluation.scores.values()
    if score < 0:
        return True, f"refused (errno {int(-score)})" if score != -1.0 else "refused"
    return False, "went through"


def diagnose(isolation: IsolationConfig | None = None) -> Report:
    """Start one worker with `isolation` (unisolated allowed: this is a diagnosis) and run the probes."""
    config = isolation or IsolationConfig()
    config = IsolationConfig(**{**asdict(config), "allow_unisolated": True})
    probes = []
    with SandboxPool(1, Limits(timeout_s=20.0, memory_mb=256), config) as pool:
        for name, (layer, body) in ALLOWED.items():
            evaluation = pool.evaluate(_HEADER + body, "evaluate", {"x": 0})
            outcome = "went through" if evaluation.ok else f"{_kind(evaluation)}: {evaluation.error}"
            probes.append(Probe(name, layer, evaluation.ok, outcome, allowed=True))
        for name, (layer, body) in PROBES.items():
            contained, outcome = _judge(pool.evaluate(_HEADER + body, "evaluate", {"x": 0}))
            probes.append(Probe(name, layer, contained, outcome))
        return Report(pool.layers, tuple(probes))


def _kind(evaluation: Evaluation) -> str:
    return evaluation.failure.value if evaluation.failure else "error"
