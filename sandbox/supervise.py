"""The worker's side of one run: fork the candidate's child, watch it, classify how it ended.

How a child that died without a result is classified (it wrote nothing, so
the worker has only its wait status and peak RSS to go on):

- SIGXCPU: it ran out of CPU time (RLIMIT_CPU) -> `timeout`.
- SIGKILL, SIGSEGV, SIGBUS or SIGABRT with a peak RSS at least half the
  memory allowance above what the child started with (the worker's
  anonymous RSS) -> `memory`. Under RLIMIT_AS a failed allocation usually
  raises MemoryError, which the child classifies itself; these signals
  cover C code that dereferences a failed malloc or aborts on it, and the
  kernel's OOM killer. The RSS test keeps an ordinary segfault in a small
  process from passing as a memory failure; it misses a crash after a huge
  allocation that was never touched (-> `error`).
- SIGSYS: the seccomp filter killed it for a forbidden system call
  (creating a process, exec, ptrace, namespaces, ...) -> `forbidden`.
- any other signal -> `error`, naming the signal; a normal exit -> `error`.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import time
from collections.abc import Mapping
from typing import Any

from sandbox import procs
from sandbox.child import Source, run_child
from sandbox.layers import ChildPlan, wipe_scratch
from sandbox.protocol import FrameTooLarge, ProtocolError, decode_outcome, read_frame
from sandbox.result import Evaluation, FailureKind, Limits

REAP_TIMEOUT_S = 1.0  # to kill off whatever the candidate left running
_MEMORY_SIGNALS = frozenset({signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT})


class Supervisor:
    """Runs candidates one at a time for a worker; reaps each finished child lazily.

    Once a child's result is in, the child is SIGKILLed at once but reaped
    (and its scratch wiped) only before the next fork, or when the worker
    is idle (`finish`): the kernel tears the dead process down while the
    reply travels to the loop, instead of before it.
    """

    def __init__(self, plan: ChildPlan) -> None:
        self.plan = plan
        self._dead: int | None = None  # a killed child not yet reaped

    @property
    def pending(self) -> bool:
        return self._dead is not None

    def finish(self) -> None:
        """Reap the last child and whatever it left, and empty the scratch directory."""
        if self._dead is not None:
            pid, self._dead = self._dead, None
            os.wait4(pid, 0)
            procs.reap_children(REAP_TIMEOUT_S)  # processes that left the group: we are their subreaper
            wipe_scratch(self.plan)  # nothing a candidate wrote reaches the next one

    def run(self, program: Source, entry: str, inputs: Mapping[str, Any], limits: Limits) -> Evaluation:
        """Run `program` in a fresh forked child under `limits`, and return its checked outcome."""
        self.finish()
        baseline_rss, worker = procs.anon_rss_bytes(), os.getpid()
        read_fd, write_fd = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: run_child never returns, and nothing may fall back into the worker
            try:
                os.close(read_fd)
                run_child(program, entry, inputs, limits, write_fd, worker, self.plan)
            finally:
                os._exit(127)
        os.close(write_fd)
        try:
            outcome = _collect(read_fd, pid, limits, start + limits.timeout_s)
            wall_time = time.monotonic() - start
        finally:
            os.close(read_fd)
            _kill(pid)
            self._dead = pid
        if isinstance(outcome, bytes):
            evaluation = decode_outcome(outcome, list(inputs))  # never trust the child's JSON
        elif outcome is None:  # judged by how it died: reap it now
            self._dead = None
            _, status, usage = os.wait4(pid, 0)
            procs.reap_children(REAP_TIMEOUT_S)
            wipe_scratch(self.plan)
            evaluation = _classify_exit(status, usage.ru_maxrss * 1024 - baseline_rss, limits)  # ru_maxrss: KiB
        else:
            evaluation = outcome
        return dataclasses.replace(evaluation, wall_time=wall_time)


def _collect(read_fd: int, pid: int, limits: Limits, deadline: float) -> bytes | Evaluation | None:
    """Wait for the child's result frame.

    Returns the frame, or an Evaluation when the wait itself decides the
    outcome (deadline passed, result too large), or None when the child
    ended without a result. Reads exactly one frame rather than waiting for
    EOF: a grandchild may hold the pipe open forever.
    """
    try:
        payload = read_frame(read_fd, limits.max_output_bytes, deadline)
    except TimeoutError:
        return _timed_out(limits)
    except FrameTooLarge:
        return Evaluation(
            failure=FailureKind.INVALID_OUTPUT,
            error=f"result larger than {limits.max_output_bytes} bytes",
        )
    except ProtocolError:  # cut short: the child died while writing
        payload = None
    if payload is not None:
        return payload
    # The pipe closed without a result. The child closes it by dying, usually,
    # but a candidate can also close it and carry on running.
    if not _wait_exit(pid, deadline):
        return _timed_out(limits)
    return None


def _timed_out(limits: Limits) -> Evaluation:
    """Return the timeout failure for `limits`."""
    return Evaluation(failure=FailureKind.TIMEOUT, error=f"no result within {limits.timeout_s:g} s")


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait until the (unreaped) child `pid` exits or `deadline` passes; True if it exited."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int((deadline - time.monotonic()) * 1000))))
    finally:
        os.close(pidfd)


def _kill(pid: int) -> None:
    """SIGKILL the (unreaped) child and its process group."""
    # Until it is reaped the child holds its pid, so neither kill can reach a
    # stranger. The group exists only once the child has called setsid().
    if os.getpgid(pid) == pid:
        os.killpg(pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def _classify_exit(status: int, rss_growth: int, limits: Limits) -> Evaluation:
    """Classify a child that ended without writing a result (see the module docstring)."""
    if not os.WIFSIGNALED(status):
        code = os.waitstatus_to_exitcode(status)
        return Evaluation(failure=FailureKind.ERROR, error=f"exited with status {code} without a result")
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGSYS:
        return Evaluation(failure=FailureKind.FORBIDDEN, error="killed by SIGSYS: a system call the sandbox forbids")
    if signum == signal.SIGXCPU:
        return Evaluation(failure=FailureKind.TIMEOUT, error="exceeded its CPU time limit (SIGXCPU)")
    if signum in _MEMORY_SIGNALS and rss_growth >= (limits.memory_mb << 20) // 2:
        return Evaluation(failure=FailureKind.MEMORY, error=f"killed by {name} near the memory limit")
    return Evaluation(failure=FailureKind.ERROR, error=f"killed by {name}")
