"""RayPool: the SandboxPool interface over one sandbox actor per Ray node.

    with RayPool(ExecutorConfig(kind="ray", address="auto"), limits, isolation) as pool:
        evaluation = pool.submit(source, "evaluate", inputs).result()

`submit` queues an evaluation and returns a concurrent.futures.Future, as the
local pool does, so the loop cannot tell the two apart. A dispatcher thread
feeds each node's actor in batches (at most two in flight per node: the
backpressure), least-loaded node first (the fairness), and resolves the
futures. A node that dies, or stops answering past its batches' deadlines,
loses only its in-flight evaluations: each is queued again for another node
up to `max_retries` times, then resolved as a `lost` failure. Nodes that join
later (or come back) get an actor of their own within DISCOVER_S seconds.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from evolve.distributed.connect import connect, disconnect
from evolve.distributed.node import SandboxNode, evaluation_from_json
from evolve.executor import ExecutorConfig
from sandbox import Evaluation, FailureKind, IsolationConfig, Layers, Limits, SandboxError
from sandbox.inputs import InputCache, InputSet

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a node's actor: Ray worker start plus the pool's workers importing numpy and scipy
DISCOVER_S = 5.0  # how often to look for nodes that joined (or left) the cluster
CALL_GRACE_S = 30.0  # beyond the candidates' own time limits, before a batch's node counts as hung
REPLY_GRACE_S = 5.0  # per candidate, as in the local pool: fork, reaping, unpickling inputs
WAIT_S = 0.02  # the dispatcher's poll: how soon a new submit is sent while results are pending


@dataclass
class _Item:
    future: Future[Evaluation]
    program: str
    entry: str
    inputs: InputSet  # its inputs' key, and their Ray object ref as `handle`
    limits: Limits
    lost: int = 0  # how many nodes died while running it


@dataclass
class _Batch:
    items: list[_Item]
    deadline: float


@dataclass
class _Node:
    node_id: str
    actor: Any  # the SandboxNode actor handle
    name: str = ""
    workers: int = 0
    batch_size: int = 0
    layers: Layers = field(default_factory=Layers)
    started: Any = None  # the info() ref while the actor starts
    start_deadline: float = 0.0
    in_flight: dict[Any, _Batch] = field(default_factory=dict)  # ObjectRef -> batch

    @property
    def ready(self) -> bool:
        return self.started is None

    def load(self) -> int:
        return sum(len(b.items) for b in self.in_flight.values())


class RayPool:
    """Evaluate programs on sandbox pools spread over a Ray cluster, one actor per node."""

    def __init__(self, config: ExecutorConfig, limits: Limits, isolation: IsolationConfig) -> None:
        """Join (or start) Ray, start an actor on every node with CPUs and wait until they are ready.

        Raises SandboxError when no node can run a sandbox pool.
        """
        self.config, self.limits, self.isolation = config, limits, isolation
        self._owns_ray = connect(config.address)
        self._lock = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._nodes: dict[str, _Node] = {}
        self._failed_nodes: dict[str, str] = {}  # node id -> why its actor could not start (not retried)
        self._inputs = InputCache(attach=ray.put)  # each mapping in Ray's object store once
        self._closing = False
        try:
            self._discover()
            self._wait_started()
        except BaseException:
            self._shutdown()
            raise
        ready = sorted((n for n in self._nodes.values() if n.ready), key=lambda n: n.name)
        if not ready:
            why = "; ".join(self._failed_nodes.values()) or "no alive node with CPUs"
            self._shutdown()
            raise SandboxError(f"no Ray node could start a sandbox pool ({why})")
        self.layers: Layers = ready[0].layers
        self._thread = threading.Thread(target=self._dispatch_loop, name="ray-dispatch", daemon=True)
        self._thread.start()

    # -- the SandboxPool interface ---------------------------------------------------

    @property
    def nodes(self) -> dict[str, int]:
        """Return {node name: sandbox workers} for the nodes ready now."""
        with self._lock:
            return {n.name: n.workers for n in self._nodes.values() if n.ready}

    def submit(self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None) -> Future[Evaluation]:
        """Queue `program` for a node's pool; the future ends in an Evaluation (or SandboxError: no node left)."""
        input_set = self._inputs.get(inputs)
        future: Future[Evaluation] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if self._closing:
                raise SandboxError("the Ray pool is closed")
            self._queue.append(_Item(future, program, entry, input_set, limits or self.limits))
            self._lock.notify()
        return future

    def evaluate(self, program: str, entry: str, inputs: Mapping[str, Any], limits: Limits | None = None) -> Evaluation:
        return self.submit(program, entry, inputs, limits).result()

    def close(self) -> None:
        """Stop dispatching, fail what is still queued, stop every actor and leave Ray."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout=10)
        self._shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- nodes -------------------------------------------------------------------

    def _discover(self) -> None:
        """Start an actor on every alive node with CPUs that has none; forget nodes that left."""
        alive = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        for node_id in list(self._nodes):
            if node_id not in alive:
                self._lose_node(node_id, "left the cluster")
        for node_id, info in alive.items():
            cpus = int(info.get("Resources", {}).get("CPU", 0))
            if node_id in self._nodes or node_id in self._failed_nodes or cpus < 1:
                continue
            workers = self.config.workers_per_node or cpus
            actor = ray.remote(SandboxNode).options(
                num_cpus=0, max_restarts=0, max_concurrency=3,  # two batches and an info() call at once
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(workers, _limits_json(self.limits), self.isolation.to_json())
            self._nodes[node_id] = _Node(
                node_id, actor, name=node_id[:8], workers=workers, started=actor.info.remote(),
                start_deadline=time.monotonic() + START_TIMEOUT_S,
            )
            log.info("starting a sandbox pool of %d worker(s) on node %s", workers, node_id[:8])

    def _wait_started(self) -> None:
        """Wait (bounded) for the actors started by the first discovery."""
        deadline = time.monotonic() + START_TIMEOUT_S
        for node in list(self._nodes.values()):
            try:
                info = ray.get(node.started, timeout=max(1.0, deadline - time.monotonic()))
            except (ray.exceptions.RayError, TimeoutError) as exc:
                self._drop_start(node, f"node {node.node_id[:8]}: {_one_line(exc)}")
                continue
            self._started(node, info)

    def _started(self, node: _Node, info_json: str) -> None:
        info = json.loads(info_json)
        if info["error"]:
            self._drop_start(node, f"node {info['node']}: {info['error']}")
            return
        node.name, node.layers, node.started = info["node"], Layers.from_json(info["layers"]), None
        node.batch_size = self.config.batch_size or node.workers
        log.info("sandbox pool ready on node %s: %d worker(s), %s", node.name, node.workers, node.layers.describe())

    def _drop_start(self, node: _Node, why: str) -> None:
        log.warning("no sandbox pool on %s", why)
        self._failed_nodes[node.node_id] = why
        self._nodes.pop(node.node_id, None)
        ray.kill(node.actor, no_restart=True)

    def _lose_node(self, node_id: str, why: str) -> None:
        """Forget a node; queue its in-flight evaluations again (or resolve them as lost)."""
        node = self._nodes.pop(node_id)
        lost = [item for batch in node.in_flight.values() for item in batch.items]
        log.warning("node %s %s; %d evaluation(s) in flight on it", node.name, why, len(lost))
        try:
            ray.kill(node.actor, no_restart=True)
        except ray.exceptions.RayError:
            pass  # already gone with its node
        for item in reversed(lost):  # to the queue's front, in their order: they were submitted first
            item.lost += 1
            if item.lost > self.config.max_retries:
                error = f"its node {node.name} {why}, and so did {item.lost - 1} before (executor.max_retries)"
                _resolve(item.future, Evaluation(failure=FailureKind.LOST, error=error, node=node.name))
            else:
                self._queue.appendleft(item)

    # -- the dispatcher thread -----------------------------------------------------

    def _dispatch_loop(self) -> None:
        last_discover = time.monotonic()
        no_node_since: float | None = None
        while True:
            with self._lock:
                if self._closing:
                    return
                if not self._queue and not any(n.in_flight or not n.ready for n in self._nodes.values()):
                    self._lock.wait(timeout=DISCOVER_S)
                    if self._closing:
                        return
                now = time.monotonic()
                if now - last_discover >= (DISCOVER_S if self._ready_nodes() else 1.0):  # with no node, look often
                    self._discover()
                    last_discover = now
                self._expire(now)
                no_node_since = self._check_nodes_left(now, no_node_since)
                self._send()
                refs = [ref for n in self._nodes.values() for ref in n.in_flight]
                refs += [n.started for n in self._nodes.values() if not n.ready]
            if not refs:
                time.sleep(WAIT_S)
                continue
            ready, _ = ray.wait(refs, num_returns=1, timeout=WAIT_S)
            with self._lock:
                for ref in ready:
                    self._collect(ref)

    def _ready_nodes(self) -> list[_Node]:
        return [n for n in self._nodes.values() if n.ready]

    def _send(self) -> None:
        """Send queued evaluations in batches, least-loaded node first, at most two batches per node."""
        while self._queue:
            open_nodes = [n for n in self._ready_nodes() if len(n.in_flight) < 2]
            if not open_nodes:
                return
            node = min(open_nodes, key=lambda n: (n.load() / n.workers, n.name))
            share = math.ceil(len(self._queue) / len(open_nodes))  # spread a short queue over the nodes
            items = [self._queue.popleft() for _ in range(min(node.batch_size, share, len(self._queue)))]
            ahead = node.load() + len(items)
            rounds = math.ceil(ahead / node.workers)
            slowest = max(item.limits.timeout_s for item in items) + REPLY_GRACE_S
            deadline = time.monotonic() + CALL_GRACE_S + rounds * slowest
            payload = [(i.program, i.entry, i.inputs.key, _limits_json(i.limits)) for i in items]
            boxed = {i.inputs.key: [i.inputs.handle] for i in items}
            ref = node.actor.run.remote(payload, boxed)
            node.in_flight[ref] = _Batch(items, deadline)

    def _collect(self, ref: Any) -> None:
        """Resolve a finished batch's futures, or handle its node's death."""
        for node in list(self._nodes.values()):
            if node.started is not None and ref == node.started:
                try:
                    self._started(node, ray.get(ref, timeout=10))
                except (ray.exceptions.RayError, TimeoutError) as exc:
                    self._drop_start(node, f"node {node.node_id[:8]}: {_one_line(exc)}")
                return
            batch = node.in_flight.get(ref)
            if batch is None:
                continue
            try:
                results = json.loads(ray.get(ref, timeout=10))
            except (ray.exceptions.RayError, TimeoutError) as exc:
                self._lose_node(node.node_id, f"failed ({_one_line(exc)})")
                return
            del node.in_flight[ref]
            for item, data in zip(batch.items, results, strict=True):
                _resolve(item.future, evaluation_from_json(data))
            return
        # A batch of a node already given up on: its evaluations were queued again; ignore it.

    def _expire(self, now: float) -> None:
        """Give up on nodes whose batches are past their deadline (hung, or cut off from the driver)."""
        for node in list(self._nodes.values()):
            if not node.ready and node.start_deadline < now:
                self._drop_start(node, f"node {node.node_id[:8]}: its sandbox actor did not start in {START_TIMEOUT_S:g}s")
            elif any(batch.deadline < now for batch in node.in_flight.values()):
                self._lose_node(node.node_id, "did not answer within its batches' deadline")

    def _check_nodes_left(self, now: float, since: float | None) -> float | None:
        """Fail the queued evaluations once no node has been able to take them for node_wait_s."""
        if self._nodes or not self._queue:
            return None
        since = since if since is not None else now
        if now - since >= self.config.node_wait_s:
            error = SandboxError(
                f"no Ray node left to run the sandbox for {self.config.node_wait_s:g}s; "
                "restart the cluster's nodes and continue with `evolve resume`"
            )
            while self._queue:
                item = self._queue.popleft()
                if not item.future.done():
                    item.future.set_exception(error)
            return None
        return since

    def _shutdown(self) -> None:
        """Cancel what is queued, stop the actors, and leave (or stop) Ray."""
        with self._lock:
            pending = list(self._queue) + [i for n in self._nodes.values() for b in n.in_flight.values() for i in b.items]
            self._queue.clear()
            nodes, self._nodes = list(self._nodes.values()), {}
        for item in pending:
            if not item.future.done():
                item.future.set_exception(SandboxError("the Ray pool was closed before this evaluation finished"))
        closing = [node.actor.close.remote() for node in nodes]  # stop their sandbox workers cleanly, all at once
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=10)  # a dead node's call fails at once; a hung one is cut off
        for node in nodes:
            ray.kill(node.actor, no_restart=True)
        disconnect(self._owns_ray)


def _resolve(future: Future[Evaluation], evaluation: Evaluation) -> None:
    if not future.done():
        future.set_result(evaluation)


def _limits_json(limits: Limits) -> dict[str, Any]:
    return {"timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb, "max_output_bytes": limits.max_output_bytes}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
