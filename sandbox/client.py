"""The loop's end of one sandbox worker process: start it, send requests, read replies.

The worker is exec'd, not forked from the loop, so it shares none of the
loop's memory (archive handles, model weights, keys), and it gets a scrubbed
environment so that no secret in the loop's environment reaches a candidate.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError, WorkerLost
from sandbox.inputs import InputSet
from sandbox.isolation import IsolationConfig, Layers
from sandbox.protocol import MISSING_INPUTS, ProtocolError, decode_outcome, read_frame, write_frame
from sandbox.result import Evaluation, Limits

READY_TIMEOUT_S = 60.0  # numpy and scipy imports on a cold, busy machine
REPLY_GRACE_S = 5.0  # beyond a run's own timeout: fork, reaping, unpickling inputs
REPLY_OVERHEAD_BYTES = 4096  # a reply is the child's checked result plus a few fields
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH")  # PYTHONPATH: the worker imports what the loop does
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where `-m sandbox.worker` resolves


def worker_env() -> dict[str, str]:
    """Return the worker's environment: PATH, PYTHONPATH and locale from ours, one thread per math library."""
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    # Each candidate gets one core; BLAS thread pools would oversubscribe the machine.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


class WorkerClient:
    """One worker process and the pipes to it; used by one thread at a time."""

    def __init__(self, isolation: IsolationConfig) -> None:
        """Start a worker process; call `wait_ready` before sending it work."""
        self.layers = Layers()  # known once the worker is ready
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox.worker", json.dumps(isolation.to_json())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=worker_env(),
                cwd=_PACKAGE_ROOT,
                close_fds=True,
                bufsize=0,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start a sandbox worker: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._requests = self._proc.stdin.fileno()
        self._replies = self._proc.stdout.fileno()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait for the worker's ready announcement, raising SandboxError if it never comes."""
        try:
            reply = json.loads(self._read(time.monotonic() + timeout_s, REPLY_OVERHEAD_BYTES))
        except (WorkerLost, ValueError) as exc:
            raise SandboxError(f"sandbox worker {self.pid} did not start: {exc}") from exc
        if not isinstance(reply, dict) or reply.get("ready") is not True:
            raise SandboxError(f"sandbox worker {self.pid} did not start: unexpected {reply!r}")
        self.layers = Layers.from_json(reply.get("layers", {}))

    def run(self, program: str, entry: str, inputs: InputSet, limits: Limits) -> Evaluation:
        """Evaluate `program` on `inputs`, shipping them first if the worker lacks them.

        Raises WorkerLost if the worker dies or stops answering.
        """
        request = {
            "op": "run",
            "program": program,
            "entry": entry,
            "key": inputs.key,
            "limits": dataclasses.asdict(limits),
        }
        deadline_s = limits.timeout_s + REPLY_GRACE_S
        max_bytes = limits.max_output_bytes + REPLY_OVERHEAD_BYTES
        self._send(request)
        reply = self._read(time.monotonic() + deadline_s, max_bytes)
        if reply == MISSING_INPUTS:
            self._send({"op": "inputs", "key": inputs.key, "inputs": dict(inputs.values)})
            self._send(request)
            reply = self._read(time.monotonic() + deadline_s, max_bytes)
        return decode_outcome(reply, inputs.names)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the worker's stdin so it exits; kill it if it has not within `timeout_s`."""
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _send(self, request: dict[str, Any]) -> None:
        """Pickle and send one request."""
        try:
            write_frame(self._requests, pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:  # BrokenPipeError: the worker is gone
            raise WorkerLost("sandbox worker died") from exc

    def _read(self, deadline: float, max_bytes: int) -> bytes:
        """Read one reply frame."""
        try:
            reply = read_frame(self._replies, max_bytes, deadline)
        except TimeoutError as exc:
            raise WorkerLost("sandbox worker stopped responding") from exc
        except ProtocolError as exc:
            raise WorkerLost(f"sandbox worker sent a broken reply: {exc}") from exc
        if reply is None:
            raise WorkerLost("sandbox worker died")
        return reply
