"""SandboxPool: evaluate untrusted programs on a fixed set of worker processes.

    with SandboxPool(workers=2, limits=Limits(timeout_s=5)) as pool:
        evaluation = pool.evaluate(source, "evaluate", {"small": 10, "large": 1000})

Each submit runs on one worker, which forks a fresh child for it; at most
`workers` run at once. A worker that dies is replaced the next time its slot
is used, and the run it was serving comes back as an `error` evaluation.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from sandbox.client import WorkerClient
from sandbox.errors import SandboxError, WorkerLost
from sandbox.inputs import InputCache, InputSet
from sandbox.isolation import UNISOLATED_HINT, IsolationConfig, Layers
from sandbox.result import Evaluation, FailureKind, Limits

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()
DEFAULT_ISOLATION = IsolationConfig()


class SandboxPool:
    """Run candidate programs in `workers` sandbox worker processes, `workers` at a time."""

    def __init__(self, workers: int, limits: Limits = DEFAULT_LIMITS, isolation: IsolationConfig = DEFAULT_ISOLATION) -> None:
        """Start the workers, raising SandboxError if any cannot start or none of the layers is available.

        `layers` then says which isolation layers the workers apply.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits, self.isolation = limits, isolation
        self._clients: list[WorkerClient | None] = _start_workers(workers, isolation)
        first = self._clients[0]
        assert first is not None
        self.layers: Layers = first.layers
        if not self.layers.isolated and not isolation.allow_unisolated:
            self._stop_clients()
            why = "; ".join(self.layers.missing) or "every layer is disabled"
            raise SandboxError(f"refusing to run candidates with no isolation ({why}); {UNISOLATED_HINT}")
        # A slot index is checked out for each run; the executor never runs more
        # than `workers` tasks at once, so a free slot is always waiting.
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(workers):
            self._free.put(slot)
        self._inputs = InputCache()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")

    @property
    def nodes(self) -> dict[str, int]:
        """Return {machine: sandbox workers} for a pool spread over machines: {} for this local one."""
        return {}

    @property
    def pids(self) -> list[int]:
        """Return the process ids of the running workers."""
        return [client.pid for client in self._clients if client is not None]

    def submit(
        self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None
    ) -> Future[Evaluation]:
        """Queue `program` to be scored by calling `entry` on each input, in order.

        Thread-safe. The future raises SandboxError only if a worker cannot be
        (re)started; everything a candidate does ends in an Evaluation.
        """
        input_set = self._inputs.get(inputs)
        limits = limits if limits is not None else self.limits
        return self._executor.submit(self._run, program, entry, input_set, limits)

    def evaluate(self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None) -> Evaluation:
        """Score `program` on `inputs` and wait for the result."""
        return self.submit(program, entry, inputs, limits).result()

    def close(self) -> None:
        """Finish the runs in progress, cancel queued ones and stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._stop_clients()

    def _stop_clients(self) -> None:
        for slot, client in enumerate(self._clients):
            if client is not None:
                client.stop()
                self._clients[slot] = None

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, program: str, entry: str, inputs: InputSet, limits: Limits) -> Evaluation:
        """Run one evaluation on a free worker (in an executor thread)."""
        slot = self._free.get()
        try:
            client = self._clients[slot]
            if client is None or not client.alive:
                client = self._restart(slot)
            try:
                return client.run(program, entry, inputs, limits)
            except WorkerLost as exc:
                log.warning("sandbox worker %d lost: %s; it will be restarted", client.pid, exc)
                client.stop()
                self._clients[slot] = None
                return Evaluation(failure=FailureKind.ERROR, error=str(exc))
        finally:
            self._free.put(slot)

    def _restart(self, slot: int) -> WorkerClient:
        """Replace the worker in `slot` with a fresh one."""
        old = self._clients[slot]
        if old is not None:
            log.warning("sandbox worker %d exited; starting a new one", old.pid)
            old.stop()
            self._clients[slot] = None
        client = WorkerClient(self.isolation)
        try:
            client.wait_ready()
        except SandboxError:
            client.stop()
            raise
        self._clients[slot] = client
        return client


def _start_workers(count: int, isolation: IsolationConfig) -> list[WorkerClient | None]:
    """Start `count` workers at once and wait until all are ready."""
    clients: list[WorkerClient] = []
    try:
        for _ in range(count):
            clients.append(WorkerClient(isolation))
        for client in clients:
            client.wait_ready()
    except SandboxError:
        for client in clients:
            client.stop()
        raise
    return list(clients)
