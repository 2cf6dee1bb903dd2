"""The evolution loop: sample prompts, propose, evaluate in the sandbox, register, commit.

It is a pipeline with a fixed schedule: while batch k is evaluated by the
sandbox workers, batch k+1 is sampled and proposed in this thread; then batch
k's results are registered in order and committed in one transaction. The
schedule does not depend on timing, so a run with the same seed and a
deterministic proposer is reproducible whatever the number of workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evolve.archive import Archive, NewProgram
from evolve.config import RunConfig
from evolve.parse import extract_function, program_hash
from evolve.proposers.base import Prompt, Proposer
from evolve.spec import Spec, SpecError
from islands import Member, ProgramsDatabase
from sandbox import Evaluation, FailureKind, Limits, SandboxPool

log = logging.getLogger(__name__)


@dataclass
class Stats:
    """Counters of a run, committed with every batch."""

    samples: int = 0  # candidates proposed (the budget counts these)
    evaluated: int = 0  # candidates run in the sandbox
    valid: int = 0  # evaluated without failure
    duplicates: int = 0  # same normalized code as an earlier candidate: not run again
    rejected: dict[str, int] = field(default_factory=dict)  # unparseable proposer output, by reason
    failures: dict[str, int] = field(default_factory=dict)  # by failure kind
    best_score: float | None = None
    best_id: int | None = None
    batches: int = 0
    elapsed_s: float = 0.0  # wall time in the loop, summed over sessions


@dataclass
class _Candidate:
    prompt: Prompt
    function: str | None
    reason: str = ""
    hash: str = ""
    future: Future[Evaluation] | None = None


ProgressFn = Callable[[Stats, float], None]  # (stats, evaluations per second)


class Evolution:
    """One run: the islands, the proposer and the sandbox, recorded in an archive."""

    def __init__(
        self,
        spec: Spec,
        archive: Archive,
        pool: SandboxPool,
        proposer: Proposer,
        islands: ProgramsDatabase,
        rng: np.random.Generator,
        config: RunConfig,
        stats: Stats | None = None,
    ) -> None:
        self.spec, self.archive, self.pool, self.proposer = spec, archive, pool, proposer
        self.islands, self.rng, self.config = islands, rng, config
        self.stats = stats or Stats()
        self.limits = Limits(timeout_s=config.sandbox.timeout_s, memory_mb=config.sandbox.memory_mb)
        self.train = spec.inputs("train")
        self._hashes = archive.hashes()  # normalized hash -> program id, committed or registered
        self._functions: dict[int, str] = {}  # cache of parents' sources

    # -- starting ------------------------------------------------------------

    def seed(self) -> Evaluation:
        """Evaluate the spec's own function and register it in every island."""
        evaluation = self._evaluated(self.pool.submit(self.spec.program(self.spec.function), self.spec.entry, self.train, self.limits))
        if not evaluation.ok:
            raise seed_error(self.spec, evaluation)
        with self.archive.transaction():
            pid = self._record(_Candidate(_seed_prompt(self.spec), self.spec.function, hash=program_hash(self.spec.function)),
                               evaluation, proposer="seed", model="")
            self.islands.register(pid, dict(evaluation.scores), len(self.spec.function), None)
            for island in range(self.config.islands.num_islands):
                self.archive.add_members(island, [pid])
            self.archive.add_event("start", 0, {})
            self._commit_state()
        return evaluation

    @classmethod
    def restore_islands(cls, archive: Archive, config: RunConfig, rng: np.random.Generator) -> ProgramsDatabase:
        """Rebuild the islands from the archive's membership table and state."""
        members = archive.members()
        rows = archive.programs(sorted({pid for ids in members.values() for pid in ids}))
        per_island = [
            [Member(pid, rows[pid]["scores"], rows[pid]["length"]) for pid in members.get(i, [])]
            for i in range(config.islands.num_islands)
        ]
        return ProgramsDatabase.restore(config.islands, rng, per_island, archive.state()["islands"])

    # -- running ---------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False, on_progress: ProgressFn | None = None) -> str:
        """Evolve until the budget, the time limit or `should_stop`; return which."""
        loop = self.config.loop
        started = time.monotonic()
        elapsed_before = self.stats.elapsed_s
        with self.archive.transaction():
            self.archive.add_event("resume" if self.stats.samples else "run", self.stats.samples, {})
        pending = self._propose(self.stats.samples)
        reason = "budget"
        while pending:
            self._submit(pending)
            planned = self.stats.samples + len(pending)
            out_of_time = loop.time_limit_s is not None and time.monotonic() - started >= loop.time_limit_s
            stop = should_stop() or out_of_time
            upcoming = [] if stop else self._propose(planned)  # overlaps with the evaluation of `pending`
            self._register(pending)
            self.stats.elapsed_s = elapsed_before + (time.monotonic() - started)
            with self.archive.transaction():
                self._commit_state()
            if on_progress:
                on_progress(self.stats, self.stats.evaluated / max(self.stats.elapsed_s, 1e-9))
            if stop:
                reason = "time" if out_of_time else "stopped"
            pending = upcoming
        with self.archive.transaction():
            self.archive.add_event("stop", self.stats.samples, {"reason": reason})
        return reason

    def _propose(self, samples_so_far: int) -> list[_Candidate]:
        """Sample prompts from the islands and ask the proposer for candidates."""
        loop = self.config.loop
        remaining = loop.budget - samples_so_far
        if remaining <= 0:
            return []
        n = loop.samples_per_prompt
        count = min(loop.prompts_per_batch, -(-remaining // n))
        prompts = [self._prompt() for _ in range(count)]
        outputs = self.proposer.propose(prompts, n)
        candidates = []
        for prompt, texts in zip(prompts, outputs, strict=True):
            for text in texts[:n]:
                parsed = extract_function(text, self.spec.function_name)
                candidates.append(_Candidate(prompt, parsed.function, parsed.reason))
        return candidates[:remaining]

    def _prompt(self) -> Prompt:
        sample = self.islands.sample()
        missing = [i for i in sample.program_ids if i not in self._functions]
        for pid, row in self.archive.programs(missing).items():
            self._functions[pid] = row["function"]
        return Prompt(
            island=sample.island,
            parent_ids=tuple(sample.program_ids),
            functions=tuple(self._functions[i] for i in sample.program_ids),
            scores=tuple(sample.scores),
            function_name=self.spec.function_name,
        )

    def _submit(self, batch: Sequence[_Candidate]) -> None:
        """Start the evaluation of every candidate not seen before."""
        in_flight: set[str] = set()
        for c in batch:
            if c.function is None:
                continue
            try:
                c.hash = program_hash(c.function)
            except (SyntaxError, StopIteration):
                c.function, c.reason = None, "syntax"
                continue
            if c.hash in self._hashes or c.hash in in_flight:
                continue  # a duplicate: recorded as such when registered
            in_flight.add(c.hash)
            c.future = self.pool.submit(self.spec.program(c.function), self.spec.entry, self.train, self.limits)

    def _register(self, batch: Sequence[_Candidate]) -> None:
        """Record a batch's results in order (in one transaction with the state)."""
        with self.archive.transaction():
            for c in batch:
                self.stats.samples += 1
                if c.function is None:
                    self.stats.rejected[c.reason] = self.stats.rejected.get(c.reason, 0) + 1
                    continue
                if c.hash in self._hashes:
                    self.stats.duplicates += 1
                    self.archive.add_duplicate(self._hashes[c.hash])
                    continue
                assert c.future is not None
                evaluation = self._evaluated(c.future)
                pid = self._record(c, evaluation, self.proposer.name, self.proposer.model)
                if evaluation.ok:
                    self.islands.register(pid, dict(evaluation.scores), len(c.function), c.prompt.island)
                    self.archive.add_members(c.prompt.island, [pid])
            for reset in self.islands.note_samples(len(batch)):
                self.archive.reset_island(reset.island, reset.founder_id)
                self.archive.add_event("reset", self.stats.samples, {"island": reset.island, "founder": reset.founder_id})
            self.stats.batches += 1
            self._commit_state()

    def _evaluated(self, future: Future[Evaluation]) -> Evaluation:
        """Wait for a sandbox result and have the spec's trusted check confirm it."""
        return self.spec.verify("train", future.result())

    def _record(self, c: _Candidate, evaluation: Evaluation, proposer: str, model: str) -> int:
        assert c.function is not None
        pid = self.archive.add_program(
            NewProgram(
                hash=c.hash, function=c.function, parents=c.prompt.parent_ids,
                island=c.prompt.island if c.prompt.island >= 0 else None,
                proposer=proposer, model=model, sample=self.stats.samples, evaluation=evaluation,
            )
        )
        self._hashes[c.hash] = pid
        self.stats.evaluated += 1
        if evaluation.ok:
            self.stats.valid += 1
            if self.stats.best_score is None or evaluation.score > self.stats.best_score:
                self.stats.best_score, self.stats.best_id = evaluation.score, pid
        else:
            kind = evaluation.failure.value if evaluation.failure else "error"
            self.stats.failures[kind] = self.stats.failures.get(kind, 0) + 1
        return pid

    def _commit_state(self) -> None:
        self.archive.put_state(
            {"stats": asdict(self.stats), "rng": self.rng.bit_generator.state, "islands": self.islands.state()}
        )


def _seed_prompt(spec: Spec) -> Prompt:
    return Prompt(island=-1, parent_ids=(), functions=(), scores=(), function_name=spec.function_name)


def seed_error(spec: Spec, evaluation: Evaluation) -> SpecError:
    """Explain why the spec's own function cannot start a run."""
    if evaluation.failure is FailureKind.INVALID_OUTPUT:
        return SpecError(
            spec.path, spec.entry_line, f"the @evolve.run function `{spec.entry}` did not return a number ({evaluation.error})",
            "return the score as a float (higher is better)",
        )
    return SpecError(
        spec.path, None, f"the spec's own `{spec.function_name}` fails on the train inputs "
        f"({evaluation.failure.value if evaluation.failure else 'error'}: {evaluation.error})",
        "fix it so that `evolve eval` runs it",
    )


def stats_from_state(state: dict[str, Any]) -> Stats:
    return Stats(**state["stats"])
