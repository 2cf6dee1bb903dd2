"""The Ray executor on a real local cluster: a node killed mid-run, every evaluation accounted for.

A head and one worker node (one CPU each, a 100 MB object store, no
dashboard) run in this process's children via ray.cluster_utils; the run
itself is the real `evolve` CLI in a subprocess, joined to the cluster with
--ray-address. About 40 s on two busy cores, most of it Ray starting.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from conftest import ROOT, evolve, evolve_json
from evolve.archive import Archive
from evolve.config import RunConfig
from evolve.distributed.pool import RayPool
from evolve.distributed.proposer import RemoteProposer
from evolve.executor import ExecutorConfig
from evolve.loop import stats_from_state
from evolve.prompt import build_prompt, spec_preface
from evolve.proposers.build import make_proposer
from evolve.spec import load_spec
from sandbox import FailureKind, IsolationConfig, Limits
from sandbox.procs import descendants


NODE_ARGS = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}
# Node deaths noticed within a few seconds (Ray's defaults allow a minute): the test's time, not its outcome.
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def _stat(pid: int) -> tuple[int, str] | None:
    """Return (start time, state) of a live process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]), fields[0]


def _descendants(root: int) -> set[tuple[int, int]]:
    """Return (pid, start time) of every process below `root` now (the start time tells a reused pid)."""
    return {(pid, stat[0]) for pid in descendants([root]) if (stat := _stat(pid)) is not None}


def _alive(seen: set[tuple[int, int]]) -> list[int]:
    """Return the pids of `seen` still running (same start time, not a zombie)."""
    out = []
    for pid, started in seen:
        stat = _stat(pid)
        if stat is not None and stat[0] == started and stat[1] != "Z":
            out.append(pid)
    return out


@contextlib.contextmanager
def ray_temp_dir() -> Iterator[str]:
    """A fresh directory for everything Ray writes, also what it writes by default (`RAY_TMPDIR`), removed after.

    Without it Ray writes `/tmp/ray/ray_current_cluster`, and fails where a
    fresh machine has no `/tmp/ray`. Its socket paths must stay under 108
    bytes: a short directory in /tmp, not tmp_path.
    """
    base = tempfile.mkdtemp(prefix="evray-", dir="/tmp")
    temp_dir = os.path.join(base, "ray")  # what Ray takes as its default directory under RAY_TMPDIR
    os.mkdir(temp_dir)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAY_TMPDIR", base)  # seen by this process and every `evolve` it starts
            yield temp_dir
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with ray_temp_dir() as temp_dir:
        c = Cluster(initialize_head=False, connect=False)
        try:  # the head inside the try: a start that fails halfway still stops what it started
            c.add_node(**NODE_ARGS, include_dashboard=False, temp_dir=temp_dir, _system_config=FAST_HEALTH)
            yield c
        finally:
            c.shutdown()


def _count_on(db: Path, node: str | None) -> int:
    """Count the programs evaluated on `node` so far (None: the highest program id), 0 while the archive starts."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            if node is None:
                return conn.execute("SELECT MAX(id) FROM programs").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM programs WHERE node = ?", (node,)).fetchone()[0]
    except sqlite3.Error:  # not created yet, or its schema not committed yet
        return 0


def _node_name(node: object) -> str:
    return f"{os.uname().nodename}/{node.node_id[:8]}"  # type: ignore[attr-defined]


@pytest.mark.ray
def test_a_node_killed_mid_run_loses_nothing(tmp_path: Path, cluster: Cluster) -> None:
    worker = cluster.add_node(**NODE_ARGS)
    cluster.wait_for_nodes()
    head_name, worker_name = _node_name(cluster.head_node), _node_name(worker)
    db, config = tmp_path / "run.db", tmp_path / "small.toml"
    config.write_text(
        "[islands]\nnum_islands = 4\nreset_period = 120\n[loop]\nprompts_per_batch = 4\nsamples_per_prompt = 2\n"
        "[sandbox]\ntimeout_s = 10.0\n"
    )
    budget = 300
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve.cli", "run", "bin_packing_or", "--db", str(db), "--config", str(config),
         "--budget", str(budget), "--seed", "3", "--executor", "ray", "--ray-address", cluster.address],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    seen: set[tuple[int, int]] = set()
    killed_at: int | None = None
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            seen |= _descendants(os.getpid())
            if killed_at is None and _count_on(db, worker_name) >= 10:
                # The worker node has been busy: kill it (its raylet, its actor, its sandbox workers) at once.
                # As a machine that dies: every process of the node at once (its raylet, and the actor's worker
                # process with its sandbox pool below it, which would otherwise serve on until it noticed).
                for info in [i for infos in worker.all_processes.values() for i in infos]:
                    for pid, _ in _descendants(info.process.pid) | {(info.process.pid, 0)}:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                cluster.remove_node(worker, allow_graceful=False)
                killed_at = _count_on(db, None)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert killed_at is not None, "the run ended before the worker node did its share"
    assert f"node {worker_name}" in err  # the driver noticed the node's death

    archive = Archive.open(db, readonly=True)
    stats = stats_from_state(archive.state())
    counts = archive.counts()
    rejected = sum(stats.rejected.values())
    # Every sample is accounted for: a program in the archive (the seed aside), a duplicate or a rejection.
    assert stats.samples == budget
    assert stats.samples == (counts.programs - 1) + counts.duplicates + rejected
    assert stats.evaluated == counts.programs
    assert "lost" not in stats.failures  # the head was alive: every evaluation the worker lost ran again there
    by_node = dict(archive.conn.execute("SELECT node, COUNT(*) FROM programs GROUP BY node"))
    assert set(by_node) == {head_name, worker_name}, by_node
    # Past what the driver had already received from it when it was killed (two loop batches), only the head ran anything.
    late = archive.conn.execute("SELECT DISTINCT node FROM programs WHERE id > ?", (killed_at + 16,)).fetchall()
    assert late == [(head_name,)], (killed_at, archive.conn.execute(
        "SELECT id, sample, node FROM programs WHERE node = ? ORDER BY id DESC LIMIT 5", (worker_name,)).fetchall())

    shown = evolve_json("status", str(db))["by_node"]  # `evolve status` says which node evaluated what
    assert {r["node"]: r["programs"] for r in shown} == by_node

    cluster.shutdown()
    time.sleep(1.0)
    assert not _alive(seen), [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in _alive(seen)]


SLEEPY = "def evaluate(x):\n    import time\n    time.sleep(x)\n    return float(x)\n"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_temp_dir() as temp_dir:
        try:
            ray.init(**NODE_ARGS, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
            yield
        finally:
            ray.shutdown()


@pytest.mark.ray
def test_a_dead_actor_loses_only_its_batches_and_its_node_gets_a_new_one(local_ray: None) -> None:
    """With no retries left, what was in flight is `lost`; the node's pool is started again for what follows (~15 s)."""
    with RayPool(ExecutorConfig(kind="ray", max_retries=0), Limits(timeout_s=20), IsolationConfig()) as pool:
        [(name, workers)] = pool.nodes.items()
        assert workers == 1  # the node's CPUs
        slow = [pool.submit(SLEEPY, "evaluate", {"a": 3.0}) for _ in range(2)]
        time.sleep(1.5)  # both sent: one running, one queued behind it on the node
        [node] = pool._nodes.values()
        os.kill(json.loads(ray.get(node.actor.info.remote()))["pid"], signal.SIGKILL)
        lost = [f.result(timeout=60) for f in slow]
        assert [e.failure for e in lost] == [FailureKind.LOST, FailureKind.LOST]
        assert all(e.node == name for e in lost)
        again = pool.submit(SLEEPY, "evaluate", {"a": 0.1}).result(timeout=120)
        assert again.ok and again.scores == {"a": 0.1} and again.node == name


def test_a_local_run_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from evolve import session\n"
        "from evolve.config import RunConfig\n"
        "config = RunConfig().replace(loop={'budget': 8, 'prompts_per_batch': 2}, sandbox={'workers': 1})\n"
        f"archive, spec = session.new_run('bin_packing_or', {str(tmp_path / 'l.db')!r}, config)\n"
        "with session.pool_for(config) as pool:\n"
        "    session.open_evolution(archive, spec, config, pool, fresh=True).run()\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.ray
def test_proposer_replicas_share_a_batch_and_one_that_dies_is_restarted(local_ray: None, tmp_path: Path) -> None:
    """The transformers proposer (a tiny model, on CPU) as two Ray actors; one killed, it answers again (~30 s)."""
    pytest.importorskip("transformers", reason="needs the lm extra (make test installs it)")
    from tiny_lm import tiny_model

    spec = load_spec("bin_packing_or")
    config = RunConfig().replace(
        proposer="transformers", transformers={"model": str(tiny_model(tmp_path / "tiny"))}, sampling={"max_tokens": 16},
        executor={"kind": "ray", "proposer_gpus": 0, "proposer_replicas": 2, "proposer_restarts": 1},
    )
    proposer = make_proposer(config, spec, np.random.default_rng(0))
    assert isinstance(proposer, RemoteProposer)
    prompts = [build_prompt(i, (1,), (spec.function,), (-1.0,), spec.function_name, spec_preface(spec)) for i in range(3)]
    first = [p.texts for p in proposer.propose(prompts, 2)]  # prompts 0-1 to the first replica, 2 to the second
    assert [len(texts) for texts in first] == [2, 2, 2]
    assert all(text.startswith("def priority_v1(") for texts in first for text in texts)
    tokens = proposer.generated_tokens
    assert 0 < tokens <= 3 * 2 * 16
    pids = proposer.actor_pids()
    assert len(set(pids)) == 2
    os.kill(pids[1], signal.SIGKILL)
    again = [p.texts for p in proposer.propose(prompts, 2)]  # Ray restarts the actor and runs its share there
    assert [len(texts) for texts in again] == [2, 2, 2]
    assert proposer.generated_tokens > tokens
    new_pids = proposer.actor_pids()
    assert new_pids[0] == pids[0] and new_pids[1] != pids[1]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--executor", "local", "--ray-address", "127.0.0.1:1"], "--ray-address is for --executor ray"),
])
def test_executor_mistakes_are_one_line_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    proc = evolve("run", "bin_packing_or", "--db", str(tmp_path / "x.db"), "--budget", "8", *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
