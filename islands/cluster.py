"""A cluster: the programs of one island that share a signature.

Programs with the same per-input scores behave alike as parents, so the
island samples a cluster by score first and then, inside the cluster, a
program with a preference for short source (less bloat in the next prompt).
"""

from __future__ import annotations

from array import array

import numpy as np

from islands.config import ClusterScore

Signature = tuple[float, ...]  # per-input scores, in input order: the cluster key
ProgramId = int  # the archive's id of a program; the database never sees source


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Return softmax(logits / temperature) of a 1-D array of finite logits.

    Subtracting the maximum first keeps it finite for any finite logits and
    any temperature > 0: the largest logit always gets a non-zero weight.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1 or logits.size == 0:
        raise ValueError(f"softmax needs a non-empty 1-D array, got shape {logits.shape}")
    if not np.all(np.isfinite(logits)):
        bad = sorted({float(x) for x in logits[~np.isfinite(logits)]}, key=str)
        raise ValueError(f"softmax logits must be finite, got {bad}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"softmax temperature must be finite and > 0, got {temperature!r}")
    # (x - max) <= 0; dividing by a tiny temperature may give -inf, exp(-inf) = 0.
    weights = np.exp((logits - logits.max()) / temperature)
    return weights / weights.sum()


def reduce_signature(signature: Signature, how: ClusterScore) -> float:
    """Return the one score of a cluster from its per-input scores.

    "mean" uses sum/len exactly as `Evaluation.score` does, so the two agree
    to the last bit.
    """
    if not signature:
        raise ValueError("a signature has at least one score")
    if how == "mean":
        return sum(signature) / len(signature)
    if how == "last":
        return signature[-1]
    raise ValueError(f"unknown cluster score reduction {how!r}")


class Cluster:
    """Programs on one island with the same signature, in registration order."""

    # A run of days registers hundreds of thousands of programs, most of them in clusters of their own.
    __slots__ = ("signature", "score", "_program_ids", "_lengths")

    def __init__(self, signature: Signature, score: float) -> None:
        self.signature: Signature = signature
        self.score: float = score
        # Machine integers, not lists of int objects: a third of the memory of a singleton cluster.
        self._program_ids = array("q")
        self._lengths = array("q")

    def __len__(self) -> int:
        return len(self._program_ids)

    @property
    def program_ids(self) -> tuple[ProgramId, ...]:
        """Return the member ids in registration order."""
        return tuple(self._program_ids)

    def add(self, program_id: ProgramId, length: int) -> None:
        """Add a program whose evolved function source is `length` characters."""
        self._program_ids.append(program_id)
        self._lengths.append(length)

    def probabilities(self) -> np.ndarray:
        """Return each member's chance of being sampled: shorter is likelier.

        As the FunSearch reference: softmax(-(len - min) / (max + 1e-6)) at
        temperature 1, so the preference is mild (at most a factor e).
        """
        lengths = np.frombuffer(self._lengths, dtype=np.int64).astype(np.float64)  # (n,)
        normalized = (lengths - lengths.min()) / (lengths.max() + 1e-6)
        return softmax(-normalized, temperature=1.0)

    def sample(self, rng: np.random.Generator) -> ProgramId:
        """Draw one member id, preferring short programs."""
        assert self._program_ids, "an island never keeps an empty cluster"
        index = rng.choice(len(self._program_ids), p=self.probabilities())
        return self._program_ids[int(index)]
