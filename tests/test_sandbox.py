"""Tests for the sandbox: real worker processes running real hostile programs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hostile.procs import alive, descendants, wait_for

from sandbox import Evaluation, FailureKind, IsolationConfig, Limits, SandboxError, SandboxPool
from sandbox.client import worker_env
from sandbox.procs import command_line
from sandbox.protocol import decode_outcome

FAST = Limits(timeout_s=1.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2, limits=Limits(timeout_s=10.0)) as pool:
        yield pool


def _program(body: str, imports: str = "import os, sys, time\nimport numpy as np") -> str:
    """Wrap `body` as the body of `evaluate(x)`."""
    indented = "\n".join("    " + line for line in body.splitlines())
    return f"{imports}\n\ndef evaluate(x):\n{indented}\n"


@pytest.mark.parametrize(
    "body",
    [
        "return x * 2",
        "return np.float32(x * 2)",
        "return np.int64(x) * 2",
        "return np.array(x * 2.0)",  # a 0-d array counts as a number
    ],
)
def test_good_program_scores_in_input_order(pool: SandboxPool, body: str) -> None:
    inputs = {"zeta": 3, "alpha": 1, "mid": 2}
    evaluation = pool.evaluate(_program(body), "evaluate", inputs)
    assert evaluation.ok, evaluation.error
    assert list(evaluation.scores.items()) == [("zeta", 6.0), ("alpha", 2.0), ("mid", 4.0)]
    assert evaluation.wall_time > 0


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (_program("y = 0\nreturn x / y"), "ZeroDivisionError: division by zero (line 6)"),
        ("def helper():\n    raise KeyError('k')\n\ndef evaluate(x):\n    return helper()\n", "KeyError: 'k' (line 2)"),
        ("raise RuntimeError('at import')\n", "RuntimeError: at import (line 1)"),
        ("def evaluate(x)\n    return 1\n", "SyntaxError: expected ':' (line 1)"),
        ("def other(x):\n    return 1\n", "NameError: entry 'evaluate' is not defined"),
        ("evaluate = 3\n", "TypeError: entry 'evaluate' is not callable"),
        (_program("sys.exit(3)"), "SystemExit: 3 (line 5)"),
        (_program("os._exit(3)"), "exited with status 3 without a result"),
        (_program("import ctypes\nreturn ctypes.string_at(0)"), "killed by SIGSEGV"),
    ],
)
def test_errors_are_reported_with_their_line(pool: SandboxPool, program: str, message: str) -> None:
    evaluation = pool.evaluate(program, "evaluate", {"a": 1})
    assert evaluation.failure is FailureKind.ERROR
    assert evaluation.error == message
    assert evaluation.score == -math.inf
    # The line travels as a field too, for callers that know how the program was put together.
    assert evaluation.line == (int(message.rsplit("(line ", 1)[1][:-1]) if "(line " in message else None)


def test_a_long_message_keeps_its_line(pool: SandboxPool) -> None:
    evaluation = pool.evaluate(_program("raise ValueError('x' * 1000)"), "evaluate", {"a": 1})
    assert evaluation.error.endswith("... (line 5)") and len(evaluation.error) <= 300, evaluation.error
    assert evaluation.line == 5


def test_command_line_names_live_processes_and_zombies() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        wait_for(lambda: command_line(child.pid) == "sleep 30", what="sleep's command line")  # once it has exec'd
        child.kill()
        wait_for(lambda: not alive(child.pid), what="a zombie")
        assert command_line(child.pid) == "[sleep]"  # not reaped yet: a zombie keeps only its name
    finally:
        child.kill()
        child.wait()
    assert command_line(child.pid) == ""


@pytest.mark.parametrize("body", ["while True:\n    pass", "time.sleep(60)"])
def test_runaway_program_times_out(pool: SandboxPool, body: str) -> None:
    start = time.monotonic()
    evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1}, FAST)
    assert evaluation.failure is FailureKind.TIMEOUT
    assert time.monotonic() - start < FAST.timeout_s + 1.0


@pytest.mark.parametrize(
    "body",
    ["return len(bytearray(10**10))", "return float(np.ones(10**10).sum())", "return len([0] * 10**10)"],
)
def test_huge_allocation_is_a_memory_failure(pool: SandboxPool, body: str) -> None:
    evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1})
    assert evaluation.failure is FailureKind.MEMORY, evaluation


def test_crash_near_the_memory_cap_is_a_memory_failure(pool: SandboxPool) -> None:
    # C code that crashes after filling most of the allowance: no MemoryError to
    # catch, so the worker judges by the child's peak RSS (see sandbox.supervise).
    body = "filled = np.ones(48 * 2**20 // 8)\nimport ctypes\nreturn ctypes.string_at(0)"
    evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1}, Limits(memory_mb=64))
    assert evaluation.failure is FailureKind.MEMORY
    assert evaluation.error == "killed by SIGSEGV near the memory limit"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("return 'abc'", "str"),
        ("return None", "NoneType"),
        ("return float('nan')", "nan"),
        ("return -float('inf')", "-inf"),
        ("return [1, 2]", "list"),
        ("return True", "bool"),
        ("return np.bool_(True)", "bool"),
        ("return 1 + 2j", "complex"),
        ("return np.array([1.0])", "ndarray"),
        ("return 10**400", "1000"),
    ],
)
def test_non_numbers_are_invalid_output(pool: SandboxPool, body: str, named: str) -> None:
    evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1})
    assert evaluation.failure is FailureKind.INVALID_OUTPUT
    assert evaluation.error.startswith(f"entry 'evaluate' returned {named}")
    assert evaluation.error.endswith("expected a finite number")


@pytest.mark.parametrize(
    "forged",
    [
        b'{"scores": {"a": NaN}}',
        b'{"scores": {"a": 1e999}}',
        b'{"scores": {"a": 1, "b": 2}}',
        b'{"scores": "lots"}',
        b"\xff\xfe",
    ],
)
def test_forged_results_are_checked_by_the_worker(pool: SandboxPool, forged: bytes) -> None:
    # The candidate finds its result pipe and writes a frame of its own.
    body = (
        f"payload = {forged!r}\n"
        "for fd in range(3, 32):\n"
        "    try:\n        os.write(fd, len(payload).to_bytes(4, 'big') + payload)\n    except OSError:\n        pass\n"
        "os._exit(0)"
    )
    evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1})
    assert evaluation.failure is FailureKind.INVALID_OUTPUT
    assert evaluation.error.startswith("malformed result")


def test_oversized_result_is_invalid_output(pool: SandboxPool) -> None:
    evaluation = pool.evaluate(_program("return 1.0"), "evaluate", {"a": 1}, Limits(max_output_bytes=8))
    assert evaluation.failure is FailureKind.INVALID_OUTPUT
    assert "larger than 8 bytes" in evaluation.error


# Without seccomp a candidate can start processes: the group kill and the
# subreaper (the layers beneath) must still leave none behind.
NO_SECCOMP = IsolationConfig(seccomp=False, landlock=False)


@pytest.fixture(scope="module")
def forking_pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=1, limits=FAST, isolation=NO_SECCOMP) as pool:
        yield pool


@pytest.mark.parametrize(
    ("spawn", "then"),
    [
        ("pid = os.fork()\nif pid == 0:\n    time.sleep(1000)\n    os._exit(0)", "return 1.0"),
        ("pid = os.fork()\nif pid == 0:\n    os.setsid()\n    time.sleep(1000)\n    os._exit(0)", "return 1.0"),
        ("pid = os.fork()\nif pid == 0:\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(1000)\n    os._exit(0)",
         "return 1.0"),
        ("import subprocess\npid = subprocess.Popen(['sleep', '1000']).pid", "return 1.0"),
        ("import subprocess\npid = subprocess.Popen(['sleep', '1000']).pid", "while True:\n    pass"),
    ],
    ids=["fork", "fork-setsid", "double-fork-setsid", "popen", "popen-timeout"],
)
def test_no_process_outlives_its_evaluation(forking_pool: SandboxPool, spawn: str, then: str) -> None:
    evaluation = forking_pool.evaluate(_program(f"{spawn}\n{then}"), "evaluate", {"a": 1})
    assert evaluation.ok or evaluation.failure is FailureKind.TIMEOUT, evaluation  # it did spawn
    [worker] = forking_pool.pids
    expected = 1 if forking_pool.layers.namespaces else 0  # the worker itself, under its launcher
    wait_for(lambda: len(descendants([worker])) == expected, what="the candidate's processes gone")


def test_environment_secrets_do_not_reach_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLOOP_TEST_SECRET", "x")
    assert "EVOLOOP_TEST_SECRET" not in worker_env()
    with SandboxPool(workers=1) as pool:
        # HOME, if set, is the candidate's own scratch directory, never the loop's.
        body = "return len(os.environ.get('EVOLOOP_TEST_SECRET', '')) + 100 * (os.environ.get('HOME', '.') != os.getcwd())"
        evaluation = pool.evaluate(_program(body), "evaluate", {"a": 1})
    assert evaluation.scores == {"a": 0.0}


def test_pool_survives_failures(pool: SandboxPool) -> None:
    inputs = {"a": 1.5}
    for body in ["return 1/0", "while True:\n    pass", "return bytearray(10**10)", "os.kill(os.getpid(), 9)"]:
        assert not pool.evaluate(_program(body), "evaluate", inputs, FAST).ok
    assert pool.evaluate(_program("return x + 1"), "evaluate", inputs).scores == {"a": 2.5}


def test_concurrent_submits_all_complete(pool: SandboxPool) -> None:
    inputs = [{"x": float(i)} for i in range(3)]  # a few distinct input sets, shared between submits

    def submit(i: int) -> Evaluation:
        return pool.submit(_program(f"return x + {i}"), "evaluate", inputs[i % 3]).result(timeout=30)

    with ThreadPoolExecutor(max_workers=6) as threads:
        evaluations = list(threads.map(submit, range(18)))
    assert [e.scores["x"] for e in evaluations] == [float(i % 3 + i) for i in range(18)]


def test_killed_worker_is_replaced() -> None:
    with SandboxPool(workers=1, limits=Limits(timeout_s=30.0)) as pool:
        [worker] = pool.pids
        before = descendants([worker])
        future = pool.submit(_program("time.sleep(1000)"), "evaluate", {"a": 1})
        wait_for(lambda: len(descendants([worker]) - before) > 0, what="the candidate running")
        candidates = descendants([worker]) - before
        os.kill(worker, signal.SIGKILL)
        evaluation = future.result(timeout=30)
        assert evaluation.failure is FailureKind.ERROR
        assert evaluation.error == "sandbox worker died"
        assert pool.evaluate(_program("return 7"), "evaluate", {"a": 1}).scores == {"a": 7.0}
        assert pool.pids and pool.pids != [worker]
        # The orphaned candidate dies with its worker (PR_SET_PDEATHSIG, and its PID namespace).
        wait_for(lambda: not any(alive(pid) for pid in candidates | before), what="the orphans gone")


def test_close_stops_the_workers() -> None:
    pool = SandboxPool(workers=2)
    pids = pool.pids
    pool.close()
    assert pool.pids == []
    wait_for(lambda: not any(alive(pid) for pid in pids), what="the workers gone")


def test_worker_that_cannot_start_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(SandboxError, match="cannot start"):
        SandboxPool(workers=1)


@pytest.mark.parametrize("inputs", [{}, {1: "a"}])
def test_bad_inputs_are_rejected(pool: SandboxPool, inputs: dict[Any, str]) -> None:
    with pytest.raises(ValueError, match="non-empty mapping with str keys"):
        pool.submit("", "evaluate", inputs)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"scores": {"a": NaN}}',
        b'{"scores": {"a": Infinity}}',
        b'{"scores": {"a": 1e999}}',
        b'{"scores": {"a": true}}',
        b'{"scores": {"a": 1e999999999999}}',
        b'{"scores": {"a": ' + b"9" * 400 + b"}}",
        b'{"scores": {}}',
        b'{"failure": "bogus", "error": ""}',
        b'{"failure": "error", "error": 3}',
        b'{"scores": {"a": 1}, "wall_time": "soon"}',
        b"[1.0]",
        b"[" * 100_000,
    ],
)
def test_decode_outcome_rejects_malformed_results(payload: bytes) -> None:
    evaluation = decode_outcome(payload, ["a"])
    assert evaluation.failure is FailureKind.INVALID_OUTPUT
    assert evaluation.error.startswith("malformed result")


def test_decode_outcome_keeps_input_order_and_cleans_errors() -> None:
    assert list(decode_outcome(b'{"scores": {"a": 1, "b": 2.5}}', ["b", "a"]).scores) == ["b", "a"]
    failure = decode_outcome(b'{"failure": "error", "error": "bad\\u001b[2J\\nthing' + b"x" * 1000 + b'"}', ["a"])
    assert failure.failure is FailureKind.ERROR
    assert failure.error.isprintable() and len(failure.error) <= 300
