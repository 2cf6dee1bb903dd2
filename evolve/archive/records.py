"""The typed, frozen records the archive takes and returns: what crosses its seam.

Rows that the TUI reads by the thousand on every first load (history
points, new programs since the last poll) are `NamedTuple`s, made straight
from SQLite's row tuples; the others are frozen dataclasses. JSON columns
come back decoded: parents as a tuple of ids, scores and event data as
mappings (not to be mutated; they are plain dicts so that they serialize).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sandbox import Evaluation

Scores = Mapping[str, float]  # per-input scores, keyed by input name, in input order
ProgramId = int


@dataclass(frozen=True)
class NewProgram:
    """A candidate to record, with its evaluation (None: not evaluated)."""

    hash: str
    function: str
    parents: tuple[int, ...]
    island: int | None
    proposer: str
    model: str
    sample: int  # index of the sample that produced it (0-based, over the run)
    evaluation: Evaluation
    adapter: str = ""


@dataclass(frozen=True, slots=True)
class ProgramRow:
    """Every column of one `programs` row, decoded."""

    id: ProgramId
    hash: str  # of the normalized function: what dedupe compares
    function: str  # the evolved function's source
    parents: tuple[ProgramId, ...]  # shown in its prompt, worst first; () for the seed
    island: int | None  # None: the seed, registered on every island
    proposer: str  # "seed", "gp", "vllm", ...
    model: str  # "" when the proposer has none
    adapter: str  # the LoRA adapter's path, "" for the base model
    sample: int  # index of the sample that produced it (0-based, over the run)
    scores: Scores  # empty for a failed program
    score: float | None  # the mean of `scores`; None: failed
    failure: str | None  # a `sandbox.FailureKind` value; None: valid
    error: str  # the failure's short message, "" when valid
    wall_time: float | None  # seconds in the sandbox
    length: int  # characters of `function`
    duplicates: int  # later candidates with the same hash, not run again
    created: float | None  # Unix time it was recorded
    node: str | None  # the Ray node that evaluated it; None: the local pool (or an archive from before)

    @classmethod
    def from_sql(cls, row: Sequence[Any]) -> ProgramRow:
        """Build from a row selected in `schema.PROGRAM_COLUMNS` order."""
        (pid, hash_, function, parents, island, proposer, model, adapter, sample, scores, score, failure, error,
         wall_time, length, duplicates, created, node) = row
        return cls(
            pid, hash_, function, tuple(json.loads(parents or "[]")), island, proposer or "", model or "", adapter or "",
            sample, json.loads(scores or "{}"), score, failure, error or "", wall_time, length, duplicates or 0, created,
            node,
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """Totals over the programs table."""

    programs: int
    valid: int
    duplicates: int  # candidates not run again, summed over programs
    failures: Mapping[str, int]  # failure kind -> programs


@dataclass(frozen=True, slots=True)
class TableSizes:
    """Rows in the tables a benchmark reports."""

    programs: int
    members: int
    events: int


@dataclass(frozen=True, slots=True)
class OriginCount:
    """Programs and valid ones written by one proposer, model and adapter."""

    proposer: str
    model: str
    adapter: str
    programs: int
    valid: int
    best_score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"proposer": self.proposer, "model": self.model, "adapter": self.adapter, "programs": self.programs,
                "valid": self.valid, "best_score": self.best_score}


@dataclass(frozen=True, slots=True)
class NodeCount:
    """Programs and valid ones evaluated on one Ray node."""

    node: str
    programs: int
    valid: int

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "programs": self.programs, "valid": self.valid}


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the `events` table: starts, stops, resets, rounds."""

    id: int
    time: float
    sample: int  # samples drawn when it happened
    kind: str  # "start", "run", "resume", "stop", "reset", "adapter", "finetune-start", ...
    data: Mapping[str, Any]  # kind-specific, e.g. {"island": 3, "founder": 812} for a reset


@dataclass(frozen=True, slots=True)
class AdapterRow:
    """One `adapters` row: a LoRA round, its metadata and when the loop used it."""

    round: int
    path: str | None  # the adapter directory (PEFT)
    method: str | None  # "sft" or "dpo"
    base_model: str | None
    examples: int | None
    steps: int | None
    base_loss: float | None
    adapter_loss: float | None
    duration_s: float | None
    parent: str | None  # the adapter this round continued ("" or None: a fresh LoRA)
    data_until_sample: int | None  # the first sample its training data did not cover
    started_sample: int | None  # when the round started
    finished_sample: int | None  # when the loop recorded it and switched to it
    loss_curve: tuple[float, ...]
    created: float | None

    @classmethod
    def from_sql(cls, row: Sequence[Any]) -> AdapterRow:
        """Build from a row selected in `schema.ADAPTER_COLUMNS` order."""
        *head, loss_curve, created = row
        return cls(*head, tuple(json.loads(loss_curve or "[]")), created)  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class ArmFigures:
    """What one arm (an adapter, or the base model) wrote over a window of samples."""

    programs: int
    valid_share: float | None  # None: no program
    mean_score: float | None
    best_score: float | None
    beat_parent: float | None  # share of programs scoring above the best parent in their prompt

    FIELDS = ("programs", "valid_share", "mean_score", "best_score", "beat_parent")

    def to_json(self, prefix: str) -> dict[str, Any]:
        """Return the figures as `{prefix}_{field}` keys, as `evolve status --json` writes them."""
        return {f"{prefix}_{name}": getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True, slots=True)
class RawTable:
    """Rows of a table whose columns the archive does not fix (an `adapters` table of another shape)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


class BucketBest(NamedTuple):
    """The best valid score of an island's programs in one bucket of samples (None: none valid)."""

    island: int
    bucket: int  # sample // bucket size
    best: float | None


class SeedScore(NamedTuple):
    """A valid program on no island (the seed, registered on all of them)."""

    sample: int
    score: float


class FailureCount(NamedTuple):
    """Failed programs of one island and kind in one bucket of samples."""

    island: int | None
    bucket: int
    failure: str
    programs: int


class ProgramBrief(NamedTuple):
    """The columns of a program that the TUI's history and origin counts need."""

    id: ProgramId
    island: int | None
    sample: int
    score: float | None
    failure: str | None
    proposer: str
    model: str  # "" when none
    adapter: str  # "" when none


class FailureRow(NamedTuple):
    """A failed program, as the failures view lists it."""

    id: ProgramId
    island: int | None
    sample: int
    failure: str
    error: str
