"""Run untrusted candidate programs in forked, resource-limited processes.

    from sandbox import Limits, SandboxPool
    with SandboxPool(workers=2) as pool:
        print(pool.layers.describe())      # the isolation layers this machine allows
        evaluation = pool.evaluate(source, "evaluate", inputs, Limits(timeout_s=10))

Candidates never run in the caller's process, and nothing a candidate
produced is unpickled there: results come back as checked JSON.
"""

from sandbox.errors import SandboxError
from sandbox.isolation import IsolationConfig, Layers
from sandbox.pool import SandboxPool
from sandbox.program import Program
from sandbox.result import Evaluation, FailureKind, Limits

__all__ = ["Evaluation", "FailureKind", "IsolationConfig", "Layers", "Limits", "Program", "SandboxError", "SandboxPool"]
