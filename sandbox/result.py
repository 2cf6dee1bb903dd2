"""Plain records that cross the sandbox seam: limits in, evaluations out.

Nothing here holds an object a candidate created: scores are floats parsed
from JSON, failures are one of a closed set of kinds plus a short message.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FailureKind(str, enum.Enum):
    """Why a candidate produced no score."""

    TIMEOUT = "timeout"  # ran past its wall-clock deadline; its process group was killed
    MEMORY = "memory"  # hit the address-space cap (MemoryError or killed by the limit)
    ERROR = "error"  # raised, or died by a signal
    INVALID_OUTPUT = "invalid-output"  # returned something that is not a finite number
    FORBIDDEN = "forbidden"  # tried something the sandbox does not allow
    LOST = "lost"  # the machine running it went away (a distributed pool), and retries ran out
    CULLED = "culled"  # scored below its floor on an input (an evaluation cascade); the rest were not run


@dataclass(frozen=True)
class Limits:
    """Resource limits for one candidate run (all of its inputs together)."""

    timeout_s: float = 30.0  # wall clock, from fork to result
    memory_mb: int = 1024  # extra address space above the worker's baseline
    max_output_bytes: int = 1 << 20  # the child's JSON result is cut off past this
    # An evaluation cascade: (input, floor) pairs; a program that scores below an input's floor stops
    # there, `culled`, and the inputs after it are not run. Empty: every input runs.
    floors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        # A JSON round trip (worker protocol, Ray) hands the pairs back as lists.
        object.__setattr__(self, "floors", tuple((str(name), float(floor)) for name, floor in self.floors))
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 16:
            raise ValueError(f"memory_mb must be >= 16, got {self.memory_mb}")


@dataclass(frozen=True)
class Evaluation:
    """The outcome of running one program on a set of named inputs.

    `scores` keeps the order of the inputs as given. A failed evaluation has
    `failure` set and no scores. `outputs` holds, per input, the raw output an
    entry returned next to its score (`{"score": s, "output": o}`) as plain
    JSON values, for the problem's trusted code to re-check: the score is the
    candidate's claim until then.
    """

    scores: Mapping[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    failure: FailureKind | None = None
    error: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    node: str = ""  # the machine that ran it, for a distributed pool ("" for a local one)
    # The innermost line of the program where it failed (1-based, in the program as submitted), also named at
    # the end of `error` as "(line N)"; the caller, who knows how the program was put together, can say more.
    line: int | None = None

    def __post_init__(self) -> None:
        if self.failure is None:
            assert self.scores, "a successful evaluation has at least one score"
            assert all(math.isfinite(v) for v in self.scores.values()), self.scores

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def score(self) -> float:
        """The aggregate score: the mean over inputs (higher is better)."""
        if not self.ok:
            return -math.inf
        return sum(self.scores.values()) / len(self.scores)
