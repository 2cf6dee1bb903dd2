"""Where candidates are evaluated: the local sandbox pool, or sandbox pools on a Ray cluster.

    [executor]
    kind = "ray"
    address = "auto"        # the cluster this machine joined with `ray start`

This module imports no Ray: a local run never needs it installed. The Ray
side lives in `evolve.distributed`, imported only when `kind = "ray"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from sandbox import Evaluation, Layers, Limits

RAY_HINT = "install the Ray extra: pip install 'evoloop[ray]'"


class Evaluator(Protocol):
    """What the loop needs of a sandbox pool: submit programs, get futures of evaluations.

    `sandbox.SandboxPool` (this machine) and `evolve.distributed.pool.RayPool`
    (one pool per node of a Ray cluster) implement it.
    """

    layers: Layers  # the isolation layers its workers apply

    @property
    def nodes(self) -> Mapping[str, int]:
        """Return {machine: sandbox workers} for a pool spread over machines ({} for a local one)."""
        ...

    def submit(self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None) -> Future[Evaluation]:
        """Queue `program` to be scored by calling `entry` on each input; thread-safe."""
        ...

    def evaluate(self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None) -> Evaluation:
        """Score `program` and wait for the result."""
        ...

    def close(self) -> None:
        """Finish the runs in progress, cancel queued ones and stop the workers."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        ...


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the sandbox pool (and, on Ray, the language-model proposer) runs."""

    kind: Literal["local", "ray"] = "local"  # local: a SandboxPool in this process; ray: one pool per Ray node
    address: str | None = None  # Ray cluster to join ("auto", "HOST:6379", "ray://HOST:10001"); None: start Ray here
    workers_per_node: int | None = None  # sandbox workers of each node's pool; None: the node's CPU count
    batch_size: int | None = None  # evaluations per call to a node's pool; None: its worker count
    max_retries: int = 2  # an evaluation whose node died is retried on another this often, then recorded as `lost`
    node_wait_s: float = 120.0  # with no node left, queued evaluations wait this long for one before the run stops
    proposer_gpus: float = 1.0  # GPUs of each transformers/vllm proposer actor (0: any node, on CPU)
    proposer_replicas: int = 1  # proposer actors (samplers), each answering its share of a batch's prompts
    proposer_restarts: int = 3  # times Ray restarts a proposer actor that died

    def __post_init__(self) -> None:
        # ValueError is what evolve.config turns into a ConfigError naming the section.
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor.kind must be 'local' or 'ray', got {self.kind!r}")
        if self.workers_per_node is not None and self.workers_per_node < 1:
            raise ValueError(f"executor.workers_per_node must be >= 1, got {self.workers_per_node}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"executor.batch_size must be >= 1, got {self.batch_size}")
        if self.max_retries < 0 or self.proposer_restarts < 0:
            raise ValueError("executor.max_retries and executor.proposer_restarts must be >= 0")
        if self.proposer_replicas < 1:
            raise ValueError(f"executor.proposer_replicas must be >= 1, got {self.proposer_replicas}")
        if self.node_wait_s <= 0 or self.proposer_gpus < 0:
            raise ValueError("executor.node_wait_s must be > 0 and executor.proposer_gpus >= 0")
