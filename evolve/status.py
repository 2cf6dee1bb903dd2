"""A run's status, read from its archive: what `evolve status` prints and the TUI's header shows.

    status = read_status(archive)                   # a frozen Status
    print(json.dumps(status.to_json()))             # exactly `evolve status --json`

Everything comes from what the loop committed with its last batch (the
counters, the islands summary) and from aggregates over indexes, so a
status is cheap on a run of a million programs, apart from the counts per
proposer, which a caller that polls (the TUI) keeps up to date itself and
passes in as `by_proposer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from evolve.archive import Archive, NodeCount, OriginCount
from evolve.config import RunConfig
from evolve.lock import is_running
from evolve.loop import Evolution, Stats, islands_summary_rows, stats_from_state
from evolve.recorded import recorded_spec
from evolve.spec import Spec
from finetune.registry import AdapterEvidence, evidence

SHOWN_NOTICES = 3  # the latest proposer notices a status carries
RunState = Literal["new", "running", "finished", "stopped", "interrupted"]


@dataclass(frozen=True)
class Pipeline:
    """How the proposer and the sandbox kept each other busy (rates per second of loop time, shares)."""

    samples_per_s: float
    tokens_per_s: float
    duplicate_share: float  # of samples
    rejected_share: float  # of samples: unparseable proposer output
    proposer_waited_share: float  # of loop time: the proposer idle, waiting for the sandbox
    sandbox_waited_share: float  # of loop time: the sandbox idle, waiting for the proposer

    @classmethod
    def from_stats(cls, stats: Stats) -> Pipeline:
        rates = stats.rates()
        return cls(**{f.name: rates[f.name] for f in fields(cls)})

    def to_json(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class IslandRow:
    """One island as the loop last summarized it."""

    island: int
    best_score: float | None  # None while the island is empty
    best_program_id: int | None
    num_clusters: int
    num_programs: int  # registrations since the island was last founded
    temperature: float

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> IslandRow:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Status:
    """A run's counters, best program, islands, adapters and whether a loop runs it now."""

    problem: str
    db: str  # the archive's path as opened
    state: RunState
    proposer: str  # as configured, e.g. "vllm:0.9,gp:0.1"
    samples: int
    budget: int
    evaluated: int
    valid: int
    valid_share: float  # of evaluated
    duplicates: int
    rejected: Mapping[str, int]  # unparseable proposer output, by reason
    failures: Mapping[str, int]  # by failure kind
    elapsed_s: float  # loop time, summed over sessions
    evals_per_s: float
    tokens: int
    pipeline: Pipeline
    notices: int  # trouble the proposer handled: stalled servers retried, fallbacks taken
    last_notices: tuple[str, ...]  # the latest few, newest last ("notice" events)
    by_proposer: tuple[OriginCount, ...]  # most programs first
    best_id: int | None
    score: float | None  # the best program's train score
    scores: Mapping[str, float]  # its per-input scores
    metrics: Mapping[str, Any]  # the spec's metrics of those scores
    islands: tuple[IslandRow, ...]
    adapters: tuple[AdapterEvidence, ...]  # per LoRA round: its samples' figures next to the base model's
    by_node: tuple[NodeCount, ...]  # a run on Ray: programs and valid ones per node ([] otherwise)

    def to_json(self) -> dict[str, Any]:
        """Return the object `evolve status --json` prints (its keys in this order)."""
        return {
            "problem": self.problem, "db": self.db, "state": self.state, "proposer": self.proposer,
            "samples": self.samples, "budget": self.budget, "evaluated": self.evaluated, "valid": self.valid,
            "valid_share": self.valid_share, "duplicates": self.duplicates, "rejected": dict(self.rejected),
            "failures": dict(self.failures), "elapsed_s": self.elapsed_s, "evals_per_s": self.evals_per_s,
            "tokens": self.tokens, "pipeline": self.pipeline.to_json(),
            "notices": self.notices, "last_notices": list(self.last_notices),
            "by_proposer": [r.to_json() for r in self.by_proposer],
            "best_id": self.best_id, "score": self.score, "scores": dict(self.scores), "metrics": dict(self.metrics),
            "islands": [r.to_json() for r in self.islands],
            "adapters": [r.to_json() for r in self.adapters],
            "by_node": [r.to_json() for r in self.by_node],
        }


def read_status(archive: Archive, spec: Spec | None = None, by_proposer: Sequence[OriginCount] | None = None) -> Status:
    """Summarize a run: counters, best program, islands, adapters, whether it is running.

    `spec`: the run's spec when the caller has it (else reloaded from the
    archive). `by_proposer`: the counts per proposer when the caller keeps them
    (else counted here, over the whole programs table).
    """
    info, state = archive.run_info(), archive.state()
    config = RunConfig.from_dict(info["config"])
    stats = stats_from_state(state) if "stats" in state else Stats()
    spec = spec or recorded_spec(archive)
    best = archive.top(1)
    top = best[0] if best else None
    return Status(
        problem=info["spec"]["name"],
        db=str(archive.path),
        state=run_state(archive),
        proposer=str(config.proposer),
        samples=stats.samples,
        budget=config.loop.budget,
        evaluated=stats.evaluated,
        valid=stats.valid,
        valid_share=stats.valid / stats.evaluated if stats.evaluated else 0.0,
        duplicates=stats.duplicates,
        rejected=dict(stats.rejected),
        failures=dict(stats.failures),
        elapsed_s=stats.elapsed_s,
        evals_per_s=stats.evaluated / stats.elapsed_s if stats.elapsed_s else 0.0,
        tokens=stats.tokens,
        pipeline=Pipeline.from_stats(stats),
        notices=stats.notices,
        last_notices=tuple(str(e.data.get("message", "")) for e in archive.events("notice")[-SHOWN_NOTICES:]),
        by_proposer=tuple(archive.by_proposer() if by_proposer is None else by_proposer),
        best_id=top.id if top else None,
        score=top.score if top else None,
        scores=dict(top.scores) if top else {},
        metrics=spec.metrics("train", top.scores) if top else {},
        islands=tuple(IslandRow.from_json(r) for r in _island_rows(archive, config, state)),
        adapters=tuple(evidence(archive)),
        by_node=tuple(archive.by_node()),
    )


def run_state(archive: Archive) -> RunState:
    """Tell whether a loop runs the archive now, or how its last session ended."""
    if is_running(archive.path):
        return "running"
    last = archive.last_event()
    if last is None:
        return "new"
    if last.kind == "stop":
        return "finished" if last.data.get("reason") == "budget" else "stopped"
    return "interrupted"  # killed: resume it


def _island_rows(archive: Archive, config: RunConfig, state: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if "islands_summary" in state:  # committed by the loop with the membership it summarizes
        return list(state["islands_summary"])
    if "islands" in state:  # an archive from before: replay the whole membership (slow on big runs)
        rng = np.random.default_rng(0)  # summaries draw nothing
        return islands_summary_rows(Evolution.restore_islands(archive, config, rng))
    return []
