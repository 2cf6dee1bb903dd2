"""The programs database: islands of scored program ids, sampled for prompts.

FunSearch semantics (google-deepmind/funsearch, programs_database.py): an
island is drawn uniformly, then clusters by a Boltzmann distribution over
their scores, then a short program in each; every `reset_period` samples the
worse half of the islands is emptied and re-founded with the best program of
a surviving island. Program source stays in the archive: this module sees
ids, per-input scores and lengths only, and never touches files.

Persistence is by replay: `members()` (ids per island, in registration order)
plus the small `state()` are enough for `restore()` to rebuild a database
that samples exactly as the original would under the same generator state.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from islands.cluster import ProgramId, Signature
from islands.config import IslandsConfig
from islands.island import Island

logger = logging.getLogger(__name__)

Scores = Mapping[str, float]  # per-input scores, keyed by input name, in input order
STATE_VERSION = 1


class EmptyDatabaseError(LookupError):
    """Raised when asking for the best program before any was registered."""


class RestoreError(ValueError):
    """Raised when members and state do not describe one consistent database."""


class Member(NamedTuple):
    """One registration to replay on restore, as the archive keeps it."""

    program_id: ProgramId
    scores: Scores
    length: int  # characters of the evolved function's source


@dataclass(frozen=True)
class Sample:
    """Parents drawn from one island for one prompt, worst first."""

    island: int
    program_ids: tuple[ProgramId, ...]
    scores: tuple[float, ...]  # cluster scores, ascending


@dataclass(frozen=True)
class Reset:
    """An island emptied and re-founded with another island's best program."""

    island: int
    founder_id: ProgramId
    source_island: int  # the surviving island the founder was the best of


@dataclass(frozen=True)
class IslandSummary:
    """What a status line or the TUI shows about one island."""

    island: int
    best_score: float  # -inf while the island is empty
    best_program_id: ProgramId | None
    num_clusters: int
    num_programs: int  # registrations since the island was last founded
    temperature: float


class ProgramsDatabase:
    """Islands of program ids, sampled for prompts and periodically reset."""

    def __init__(self, config: IslandsConfig, rng: np.random.Generator) -> None:
        self._config = config
        self._rng = rng
        self._islands = [Island(config) for _ in range(config.num_islands)]
        self._inputs: tuple[str, ...] | None = None  # input order, fixed by the first program
        self._samples = 0  # samples noted over the whole run
        self._resets = 0  # resets performed over the whole run

    @property
    def config(self) -> IslandsConfig:
        """Return the configuration the database was built with."""
        return self._config

    @property
    def total_samples(self) -> int:
        """Return the number of samples noted so far."""
        return self._samples

    def register(self, program_id: ProgramId, scores: Scores, length: int, island: int | None) -> None:
        """Add a scored program to one island, or to every island when `island` is None.

        None is for the initial program. Scores must be finite and keyed by
        the same inputs as the first program (a different key order is
        accepted and put back in the first program's order).
        """
        program_id, length = operator.index(program_id), operator.index(length)  # numpy ints too
        if island is not None and not 0 <= operator.index(island) < len(self._islands):
            raise ValueError(f"island must be None or in 0..{len(self._islands) - 1}, got {island!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length!r}")
        signature = self._signature(scores)
        targets = range(len(self._islands)) if island is None else (operator.index(island),)
        for island_id in targets:
            if self._islands[island_id].register(program_id, signature, length):
                logger.debug("island %d: best score now %s (program %d)",
                             island_id, self._islands[island_id].best_score, program_id)

    def _signature(self, scores: Scores) -> Signature:
        """Return the scores as a signature in the database's input order."""
        names = tuple(scores)
        if not names:
            raise ValueError("scores must hold at least one input's score")
        values = {name: float(scores[name]) for name in names}
        bad = {name: v for name, v in values.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"scores must be finite (register only successful evaluations), got {bad}")
        inputs = self._inputs if self._inputs is not None else names
        if set(names) != set(inputs) or len(names) != len(inputs):
            raise ValueError(f"scores are for inputs {list(names)}, the database's are {list(inputs)}")
        self._inputs = inputs
        return tuple(values[name] for name in inputs)

    def sample(self) -> Sample:
        """Draw parents for one prompt from a uniformly chosen island."""
        island = int(self._rng.integers(len(self._islands)))
        parents = self._islands[island].sample(self._rng)
        return Sample(
            island=island,
            program_ids=tuple(pid for pid, _ in parents),
            scores=tuple(score for _, score in parents),
        )

    def note_samples(self, count: int) -> list[Reset]:
        """Count `count` more samples; reset at each multiple of reset_period crossed.

        Returns the resets done, in order, so the caller can persist the new
        membership (simplest: save `members()` whenever the list is non-empty).
        """
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"count must be an integer >= 0, got {count!r}")
        period = self._config.reset_period
        before, self._samples = self._samples, self._samples + count
        resets: list[Reset] = []
        for _ in range(self._samples // period - before // period):
            resets.extend(self._reset_worse_half())
        return resets

    def _reset_worse_half(self) -> list[Reset]:
        """Re-found the num_islands // 2 worst islands from the best of the rest."""
        num_reset = len(self._islands) // 2
        if num_reset == 0:
            return []
        best = np.array([island.best_score for island in self._islands], dtype=np.float64)
        # Sort by best score; a random secondary key breaks ties (the reference
        # adds 1e-6 noise instead, which also reorders genuinely close scores).
        order = np.lexsort((self._rng.random(len(best)), best))
        sources = [int(i) for i in order[num_reset:] if self._islands[int(i)].best is not None]
        if not sources:
            logger.warning("no island has a program yet: reset skipped")
            return []
        resets: list[Reset] = []
        for island_id in (int(i) for i in order[:num_reset]):
            source = sources[int(self._rng.integers(len(sources)))]
            founder = self._islands[source].best
            assert founder is not None
            self._islands[island_id] = Island(self._config)
            self._islands[island_id].register(*founder)
            resets.append(Reset(island_id, founder.program_id, source))
        self._resets += 1
        logger.info("reset islands %s", ", ".join(f"{r.island}<-{r.source_island}" for r in resets))
        return resets

    def best(self) -> tuple[ProgramId, float]:
        """Return the (program id, score) of the best program on any island."""
        top = max(self._islands, key=lambda island: island.best_score)  # first island on ties
        if top.best is None:
            raise EmptyDatabaseError("no program registered yet")
        return top.best.program_id, top.best_score

    def best_scores(self, island: int) -> dict[str, float]:
        """Return the per-input scores of `island`'s best program ({} while it is empty)."""
        best = self._islands[island].best
        if best is None or self._inputs is None:
            return {}
        return dict(zip(self._inputs, best.signature))

    def islands_summary(self) -> list[IslandSummary]:
        """Return one summary per island, in island order."""
        return [
            IslandSummary(
                island=i,
                best_score=island.best_score,
                best_program_id=island.best_program_id,
                num_clusters=island.num_clusters,
                num_programs=island.num_programs,
                temperature=island.temperature,
            )
            for i, island in enumerate(self._islands)
        ]

    def members(self) -> list[list[ProgramId]]:
        """Return each island's program ids in registration order (repeats kept)."""
        return [island.members for island in self._islands]

    def state(self) -> dict[str, Any]:
        """Return the JSON-serializable counters that, with `members()`, rebuild the database.

        The per-island entries are checks: restore recomputes them by replay
        and refuses members that do not match.
        """
        return {
            "version": STATE_VERSION,
            "samples": self._samples,
            "resets": self._resets,
            "inputs": None if self._inputs is None else list(self._inputs),
            "islands": [
                {"num_programs": island.num_programs, "best_program_id": island.best_program_id}
                for island in self._islands
            ],
        }

    @classmethod
    def restore(
        cls,
        config: IslandsConfig,
        rng: np.random.Generator,
        members: Sequence[Sequence[Member]],
        state: Mapping[str, Any],
    ) -> ProgramsDatabase:
        """Rebuild a database from `members()` (with scores and lengths) and `state()`.

        Sampling then matches the original's given `rng` in the same state.
        """
        if state.get("version") != STATE_VERSION:
            raise RestoreError(f"islands state version {state.get('version')!r}, expected {STATE_VERSION}")
        islands_state = state["islands"]
        if not (len(members) == len(islands_state) == config.num_islands):
            raise RestoreError(
                f"config has {config.num_islands} islands, members {len(members)}, state {len(islands_state)}"
            )
        db = cls(config, rng)
        db._inputs = None if state["inputs"] is None else tuple(state["inputs"])
        for island_id, island_members in enumerate(members):
            for program_id, scores, length in island_members:
                try:
                    db.register(program_id, scores, length, island_id)
                except ValueError as error:
                    raise RestoreError(f"island {island_id}, program {program_id}: {error}") from error
        for island_id, (island, expected) in enumerate(zip(db._islands, islands_state)):
            got = {"num_programs": island.num_programs, "best_program_id": island.best_program_id}
            if got != dict(expected):
                raise RestoreError(f"island {island_id}: members give {got}, state says {dict(expected)}")
        db._samples = int(state["samples"])
        db._resets = int(state["resets"])
        return db
