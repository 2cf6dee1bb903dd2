"""An island: one sub-population, its clusters and its temperature schedule."""

from __future__ import annotations

import math
from array import array
from typing import NamedTuple

import numpy as np

from islands.cluster import Cluster, ProgramId, Signature, reduce_signature, softmax
from islands.config import IslandsConfig


class EmptyIslandError(LookupError):
    """Raised when sampling an island that holds no program yet."""


class Entry(NamedTuple):
    """One registration: what a founder needs to be registered elsewhere."""

    program_id: ProgramId
    signature: Signature
    length: int


class Island:
    """A sub-population: clusters keyed by signature, best program, schedule.

    Everything here follows from the sequence of registrations since the
    island was (re)founded, which is what makes a restore by replay exact.
    """

    def __init__(self, config: IslandsConfig) -> None:
        self._config = config
        self._clusters: dict[Signature, Cluster] = {}  # insertion order = first seen
        self._members = array("q")  # program ids in registration order, repeats kept
        self.best: Entry | None = None  # the first program to reach the top score
        self.best_score: float = -math.inf

    @property
    def num_programs(self) -> int:
        """Return the number of registrations since the island was founded."""
        return len(self._members)

    @property
    def num_clusters(self) -> int:
        """Return the number of distinct signatures on the island."""
        return len(self._clusters)

    @property
    def members(self) -> list[ProgramId]:
        """Return the registered program ids in registration order."""
        return self._members.tolist()

    @property
    def temperature(self) -> float:
        """Return the cluster-sampling temperature for the next sample.

        Decays linearly with the registration count and restarts every
        `temperature_period` registrations; it never reaches zero.
        """
        period = self._config.temperature_period
        return self._config.temperature_init * (1 - (self.num_programs % period) / period)

    def register(self, program_id: ProgramId, signature: Signature, length: int) -> bool:
        """Add a program to its cluster; return whether it is the island's new best."""
        cluster = self._clusters.get(signature)
        if cluster is None:
            score = reduce_signature(signature, self._config.cluster_score)
            cluster = self._clusters[signature] = Cluster(signature, score)
        cluster.add(program_id, length)
        self._members.append(program_id)
        if cluster.score > self.best_score:  # strict: the first to reach a score keeps it
            self.best = Entry(program_id, signature, length)
            self.best_score = cluster.score
            return True
        return False

    @property
    def best_program_id(self) -> ProgramId | None:
        """Return the id of the island's best program, None while empty."""
        return None if self.best is None else self.best.program_id

    def sample(self, rng: np.random.Generator) -> list[tuple[ProgramId, float]]:
        """Draw parents as (program id, cluster score), worst first.

        Takes min(#clusters, functions_per_prompt) distinct clusters without
        replacement, each by softmax(score / temperature) over the clusters
        still left, then one program from each.
        """
        if not self._clusters:
            raise EmptyIslandError("the island holds no program; register the initial program first")
        clusters = list(self._clusters.values())
        scores = np.array([c.score for c in clusters], dtype=np.float64)  # (C,)
        temperature = self.temperature
        remaining = list(range(len(clusters)))
        chosen: list[Cluster] = []
        for _ in range(min(len(clusters), self._config.functions_per_prompt)):
            # Renormalizing over the rest (rather than rng.choice(replace=False))
            # stays valid when most weights underflow to zero.
            p = softmax(scores[remaining], temperature)
            pick = remaining.pop(int(rng.choice(len(p), p=p)))
            chosen.append(clusters[pick])
        parents = [(cluster.sample(rng), cluster.score) for cluster in chosen]
        return sorted(parents, key=lambda parent: parent[1])  # stable: ties keep draw order
