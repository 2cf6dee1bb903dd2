"""One Ray node's sandbox: a SandboxPool inside an actor pinned to that node.

The actor is trusted code (evoloop's own); candidates still run only in the
pool's forked, isolated children. Results go back to the driver as a JSON
string, so the driver unpickles nothing but a `str` for each batch.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from sandbox import Evaluation, FailureKind, IsolationConfig, Limits, SandboxError, SandboxPool

log = logging.getLogger(__name__)

INPUTS_KEPT = 16  # input mappings an actor keeps (a run uses one or two: train, and test for `best`)

# One evaluation as sent to a node: (program, entry, inputs key, limits as a dict).
Item = tuple[str, str, str, dict[str, Any]]


def node_name() -> str:
    """Name this Ray node for the archive: host name and the start of its node id."""
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"


def evaluation_to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "scores": dict(evaluation.scores), "wall_time": evaluation.wall_time,
        "failure": evaluation.failure.value if evaluation.failure else None, "error": evaluation.error,
        "outputs": dict(evaluation.outputs), "node": evaluation.node, "line": evaluation.line,
    }


def evaluation_from_json(data: Mapping[str, Any]) -> Evaluation:
    failure = FailureKind(data["failure"]) if data["failure"] else None
    scores = {str(k): float(v) for k, v in data["scores"].items()} if failure is None else {}
    return Evaluation(
        scores=scores, wall_time=float(data["wall_time"]), failure=failure, error=str(data["error"]),
        outputs=dict(data["outputs"]), node=str(data["node"]),
        line=int(data["line"]) if data.get("line") is not None else None,
    )


class SandboxNode:
    """A Ray actor owning one SandboxPool (its own fork server and isolation layers) on its node."""

    def __init__(self, workers: int, limits: dict[str, Any], isolation: dict[str, Any]) -> None:
        self.node = node_name()
        self.workers = workers
        self.error = ""
        self.pool: SandboxPool | None = None
        try:
            self.pool = SandboxPool(workers, Limits(**limits), IsolationConfig.from_json(isolation))
        except (SandboxError, ValueError) as exc:  # reported by info(), so the driver can say which node and why
            self.error = str(exc)
        # Inputs by content key, each kept as one object so that the pool pickles it once per worker.
        self._inputs: OrderedDict[str, Mapping[str, Any]] = OrderedDict()

    def info(self) -> str:
        """Return, as JSON, the node's name, worker count and isolation layers (or why its pool failed)."""
        layers = self.pool.layers.to_json() if self.pool else None
        return json.dumps({"node": self.node, "workers": self.workers, "layers": layers, "error": self.error, "pid": os.getpid()})

    def run(self, items: Sequence[Item], inputs: Mapping[str, list[ray.ObjectRef]]) -> str:
        """Evaluate a batch on this node's pool and return the evaluations as a JSON list, in order.

        `inputs` maps each key the batch uses to a one-element list holding the
        mapping's object ref (boxed, so Ray does not fetch it on every call).
        """
        if self.pool is None:
            raise SandboxError(f"node {self.node} has no sandbox pool: {self.error}")
        for key, boxed in inputs.items():
            if key not in self._inputs:
                self._inputs[key] = ray.get(boxed[0])
            self._inputs.move_to_end(key)
        while len(self._inputs) > INPUTS_KEPT:
            self._inputs.popitem(last=False)
        futures = [self.pool.submit(program, entry, self._inputs[key], Limits(**limits)) for program, entry, key, limits in items]
        out = []
        for future in futures:
            evaluation = future.result()
            out.append({**evaluation_to_json(evaluation), "node": self.node})
        return json.dumps(out)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
