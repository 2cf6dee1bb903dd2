"""The hostile suite: every program in tests/hostile/programs.py against a real pool with all layers.

The programs run once, two at a time, on one pool (module fixture); each
test then asserts one program's containment. Later tests check what the
whole suite left behind: nothing. `test_the_suite_as_an_unprivileged_user`
re-runs this file under uid 65534.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile.procs import descendants, wait_for
from hostile.programs import CASES, TIMEOUT_S, program

from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import Evaluation, FailureKind, Limits, SandboxPool
from sandbox.reveal import blocked_ancestor

ROOT = Path(__file__).resolve().parent.parent
BENIGN = "def evaluate(x):\n    import numpy as np\n    return float(np.sum(np.arange(5.0)) + np.mean([1.0, 2.0]))\n"
TOKEN = "evoloop-hostile-token-" + os.urandom(8).hex()
HOST_TRAPS = ("/tmp/evoloop-pwned", "/var/tmp/evoloop-pwned", "/dev/shm/evoloop-pwned", "/tmp/pwned")


@dataclass
class Arena:
    """The pool, what the hostile programs returned, and the bait they were given."""

    pool: SandboxPool
    workers: list[int]
    results: dict[str, Evaluation]
    benign_before: Evaluation
    server: socket.socket
    abstract: socket.socket
    inputs: dict[str, Any]
    numpy_digest: str


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def _bait(tmp: Path) -> Iterator[tuple[socket.socket, socket.socket, dict[str, Any]]]:
    """A listening TCP port and abstract socket on the host, a world-readable secret, a token in our env."""
    secret_dir = Path("/var/tmp") / f"evoloop-hostile-{os.getpid()}"
    secret_dir.mkdir(mode=0o755, exist_ok=True)
    secret = secret_dir / "secret.txt"
    secret.write_text(TOKEN)
    secret.chmod(0o644)
    planted = _plant_beside_python()
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0evoloop-hostile-{os.getpid()}"
    abstract.bind(name)
    abstract.listen()
    abstract.setblocking(False)
    os.environ["EVOLOOP_HOSTILE_SECRET"] = TOKEN  # the loop's environment: must not reach candidates
    try:
        yield server, abstract, {
            "port": server.getsockname()[1], "abstract": name, "secret_path": str(secret), "token": TOKEN,
            "loop_dir": str(tmp), "planted": [str(p) for p in planted],
        }
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
        os.environ.pop("EVOLOOP_HOSTILE_SECRET", None)
        server.close()
        abstract.close()
        shutil.rmtree(secret_dir, ignore_errors=True)


def _plant_beside_python() -> list[Path]:
    """Write world-readable bait next to Python's prefix, and in the directory that keeps the candidates' uid out of it.

    Here that is the root user's home (mode 0700) holding the interpreter: the
    worker reveals the prefix to candidates (sandbox.reveal) and nothing else.
    Places this process may not write (the unprivileged re-run) are skipped.
    """
    prefix = Path(sys.base_prefix).resolve()
    places = [prefix.parent / f"evoloop-hostile-{os.getpid()}.key"]
    blocked = blocked_ancestor(str(prefix), 65534, 65534)
    if blocked is not None:
        places.append(Path(blocked) / f".evoloop-hostile-id_rsa-{os.getpid()}")
    planted = []
    for path in places:
        try:
            path.write_text(TOKEN)
            path.chmod(0o644)
        except OSError:
            continue
        planted.append(path)
    return planted


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    with _bait(tmp_path_factory.mktemp("loop")) as (server, abstract, bait), \
            SandboxPool(2, Limits(timeout_s=30.0)) as pool:
        inputs = {"x": bait}
        numpy_digest = _digest(np.__file__)
        benign_before = pool.evaluate(BENIGN, "evaluate", inputs)
        short = Limits(timeout_s=TIMEOUT_S)
        futures: dict[str, Future[Evaluation]] = {
            name: pool.submit(program(case.body), "evaluate", inputs, short if case.timeout else None)
            for name, case in CASES.items() if not case.alone
        }
        results = {name: future.result() for name, future in futures.items()}
        for name, case in CASES.items():  # one at a time: these compete for a per-uid limit
            if case.alone:
                results[name] = pool.evaluate(program(case.body), "evaluate", inputs)
        yield Arena(pool, list(pool.pids), results, benign_before, server, abstract, inputs, numpy_digest)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_program_is_contained(arena: Arena, name: str) -> None:
    case = CASES[name]
    missing = case.missing_layer(arena.pool.layers)
    if missing:
        pytest.skip(f"the {missing} layer is not available here ({arena.pool.layers.describe()})")
    problem = case.check(arena.results[name])
    assert problem is None, f"{name}: {problem}"


def test_timeouts_end_at_the_deadline(arena: Arena) -> None:
    for name, case in CASES.items():
        if case.timeout:
            assert arena.results[name].wall_time < TIMEOUT_S + 2.0, name


def test_the_suite_leaves_nothing_behind(arena: Arena) -> None:
    pool = arena.pool
    assert pool.pids == arena.workers, "a hostile program took a worker down"
    # Each worker's launcher has exactly one descendant left: its worker (PID 1 of its namespace).
    expected = 1 if pool.layers.namespaces else 0
    wait_for(lambda: all(len(descendants([pid])) == expected for pid in pool.pids), what="no stray process")
    for trap in HOST_TRAPS:
        assert not os.path.exists(trap), trap
    with pytest.raises(BlockingIOError):
        arena.server.accept()  # nobody reached the loop's port
    with pytest.raises(BlockingIOError):
        arena.abstract.accept()
    assert _digest(np.__file__) == arena.numpy_digest
    after = pool.evaluate(BENIGN, "evaluate", arena.inputs)
    assert after.ok and after.scores == arena.benign_before.scores == {"x": 11.5}


def test_each_candidate_starts_pristine(arena: Arena) -> None:
    # After monkeypatching numpy and littering scratch (on both workers), the next programs see neither.
    hostile = [program(CASES[name].body) for name in ("monkeypatch-numpy", "litter-scratch")] * 2
    probe = ("import os\nimport numpy as np\ndef evaluate(x):\n"
             "    return float(np.sum(np.arange(4))) + np.mean([0.0]) + 100 * len(os.listdir('.')) + np.random.rand() * 0\n")
    futures = [arena.pool.submit(p, "evaluate", arena.inputs) for p in hostile]
    assert all(f.result().ok for f in futures)
    results = [arena.pool.submit(probe, "evaluate", arena.inputs) for _ in range(4)]
    assert [f.result().scores for f in results] == [{"x": 6.0}] * 4


FORGING_SPEC = '''
import evolve

INPUTS = {"train": {"n4": 4, "n6": 6}}


@evolve.run
def evaluate(n):
    chosen = pick(n)
    return {"score": len(chosen), "output": chosen}


@evolve.evolve
def pick(n):
    return list(range(n))


@evolve.check
def distinct_in_range(n, output):
    if len(set(output)) != len(output) or not all(0 <= x < n for x in output):
        raise ValueError("not distinct numbers in range")
    return len(output)
'''


@pytest.mark.parametrize(
    ("payload", "failure"),
    [
        ('{"scores": {"n4": 1e9, "n6": 1e9}, "outputs": {"n4": [0], "n6": [0]}}', FailureKind.FORBIDDEN),
        ('{"scores": {"n4": 1e9, "n6": 1e9}}', FailureKind.INVALID_OUTPUT),
        ('{"scores": {"n4": 1e9, "n6": 1e9}, "outputs": {"n4": [0, 0], "n6": [9]}}', FailureKind.INVALID_OUTPUT),
    ],
    ids=["claims-more-than-its-output", "no-output", "invalid-output"],
)
def test_a_forged_result_is_caught_by_the_trusted_check(
    arena: Arena, tmp_path: Path, payload: str, failure: FailureKind
) -> None:
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(FORGING_SPEC))
    forger = (
        "def pick(n):\n    import os\n"
        f"    p = {payload.encode()!r}\n"
        "    for fd in range(3, 32):\n        try:\n            os.write(fd, len(p).to_bytes(4, 'big') + p)\n"
        "        except OSError:\n            pass\n    os._exit(0)\n"
    )
    [result] = evaluate_functions(load_spec(path), {"forger": forger}, "train", arena.pool)
    assert result.evaluation.failure is failure, result.evaluation


def _unprivileged_command() -> tuple[list[str], dict[str, str]] | str:
    """Return a command prefix (and environment) that runs Python as uid 65534, or why that is impossible."""
    if os.environ.get("EVOLOOP_HOSTILE_INNER"):
        return "this is the unprivileged run itself"
    if os.getuid() != 0:
        return "the suite already runs unprivileged (not root)"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return "setpriv (util-linux) is not installed"
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    # This venv's interpreter may live where uid 65534 cannot exec it (a home
    # directory of mode 0700): then try the base and system interpreters, on
    # this venv's packages.
    site = sysconfig.get_paths()["purelib"]
    env = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
           "PYTHONDONTWRITEBYTECODE": "1", "EVOLOOP_HOSTILE_INNER": "1"}
    check = "import numpy, scipy, pytest, sandbox, evolve, subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"
    tried = []
    same_version = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path=os.defpath) or ""
    for python in dict.fromkeys([sys.executable, getattr(sys, "_base_executable", ""), same_version]):
        if python:
            probe = subprocess.run([*prefix, python, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True)
            if probe.returncode == 0:
                return [*prefix, python], env
            tried.append(f"{python}: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}")
    return f"uid 65534 cannot run a Python with this environment's packages ({'; '.join(tried)})"


def _reachable_tmp() -> str:
    """Return a temporary directory uid 65534 can enter: $TMPDIR may be root's alone (`mktemp -d` makes it 0700)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        if os.path.isdir(candidate) and blocked_ancestor(os.path.join(candidate, "x"), 65534, 65534) is None:
            return candidate
    pytest.skip("no temporary directory that uid 65534 can enter")


def test_the_suite_as_an_unprivileged_user() -> None:
    found = _unprivileged_command()
    if isinstance(found, str):
        pytest.skip(found)
    command, env = found
    home = Path(tempfile.mkdtemp(prefix="evoloop-unprivileged-", dir=_reachable_tmp()))  # pytest's are root's alone
    try:
        home.chmod(0o777)
        proc = subprocess.run(
            [*command, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(home / "t"),
             "-o", "addopts=", "-rs", str(Path(__file__).relative_to(ROOT))],
            cwd=ROOT, env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=280,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "failed" not in proc.stdout, tail
    # Only a layer this machine does not give an unprivileged user may skip a case (here: none does).
    reasons = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("layer is not available" in r or "unprivileged run itself" in r for r in reasons), tail
