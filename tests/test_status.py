"""A run's status on a crafted archive (a real SQLite file): its state, its figures, the JSON `evolve status` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve.archive import Archive, NewProgram, OriginCount
from evolve.config import RunConfig
from evolve.lock import run_lock
from evolve.spec import load_spec
from evolve.status import read_status, run_state
from sandbox import Evaluation, FailureKind

JSON_KEYS = [  # `evolve status --json`, in this order: scripts and the TUI read it
    "problem", "db", "state", "proposer", "samples", "budget", "evaluated", "valid", "valid_share", "duplicates",
    "rejected", "failures", "elapsed_s", "evals_per_s", "tokens", "pipeline", "notices", "last_notices", "by_proposer",
    "best_id", "score",
    "scores", "metrics", "islands", "adapters", "by_node",
]


def crafted(tmp_path: Path) -> Archive:
    """A bin_packing_or archive with three programs (one failed) and the counters a loop would commit."""
    spec = load_spec("bin_packing_or")
    archive = Archive.create(tmp_path / "run.db", {
        "spec": {"name": spec.name, "path": str(spec.path), "builtin": True, "source": spec.source, "inputs_file": None},
        "config": RunConfig().replace(loop={"budget": 10}).to_dict(),
    })
    names = list(spec.inputs("train"))
    with archive.transaction():
        for i, score in enumerate([-60.0, -50.0, None]):
            ev = Evaluation({n: score for n in names}) if score is not None else Evaluation(failure=FailureKind.TIMEOUT)
            archive.add_program(NewProgram(f"h{i}", f"def priority(item, bins):\n    return -bins * {i}\n", (1,) if i else (),
                                           None if i == 0 else 0, "seed" if i == 0 else "gp", "", i, ev))
        archive.put_state({"stats": {"samples": 4, "evaluated": 3, "valid": 2, "duplicates": 1, "failures": {"timeout": 1},
                                     "elapsed_s": 2.0, "tokens": 0},
                           "islands_summary": [{"island": 0, "best_score": -50.0, "best_program_id": 2, "num_clusters": 2,
                                                "num_programs": 3, "temperature": 0.1}]})
    return archive


def test_status_reads_the_committed_counters_and_the_best_program(tmp_path: Path) -> None:
    archive = crafted(tmp_path)
    status = read_status(archive)
    assert (status.problem, status.state, status.samples, status.budget, status.evaluated, status.valid) == (
        "bin_packing_or", "new", 4, 10, 3, 2)
    assert status.valid_share == pytest.approx(2 / 3) and status.evals_per_s == pytest.approx(1.5)
    assert (status.best_id, status.score) == (2, -50.0) and set(status.scores) == set(status.metrics["excess_percent"])
    assert [(i.island, i.best_program_id) for i in status.islands] == [(0, 2)]
    assert status.by_proposer == (OriginCount("gp", "", "", 2, 1, -50.0), OriginCount("seed", "", "", 1, 1, -60.0))
    assert status.adapters == () and status.by_node == ()
    given = (OriginCount("gp", "", "", 9, 9, -1.0),)  # a poller's own counts are used as they are
    assert read_status(archive, by_proposer=given).by_proposer == given


def test_status_json_keeps_its_keys_and_serializes(tmp_path: Path) -> None:
    out = read_status(crafted(tmp_path)).to_json()
    assert list(out) == JSON_KEYS
    assert json.loads(json.dumps(out)) == out  # plain JSON all the way down
    assert out["failures"] == {"timeout": 1} and out["scores"] and out["islands"][0]["best_program_id"] == 2
    assert out["by_proposer"][0] == {"proposer": "gp", "model": "", "adapter": "", "programs": 2, "valid": 1, "best_score": -50.0}
    assert set(out["pipeline"]) == {"samples_per_s", "tokens_per_s", "duplicate_share", "rejected_share",
                                    "proposer_waited_share", "sandbox_waited_share"}


@pytest.mark.parametrize("events,state", [
    ([], "new"),
    ([("run", {})], "interrupted"),  # killed: no stop event
    ([("run", {}), ("stop", {"reason": "budget"})], "finished"),
    ([("run", {}), ("stop", {"reason": "stopped"})], "stopped"),
    ([("run", {}), ("stop", {"reason": "time"})], "stopped"),
    ([("stop", {"reason": "budget"}), ("resume", {})], "interrupted"),
])
def test_run_state_from_the_last_event(tmp_path: Path, events: list[tuple[str, dict]], state: str) -> None:
    archive = crafted(tmp_path)
    with archive.transaction():
        for i, (kind, data) in enumerate(events):
            archive.add_event(kind, i, data)
    assert run_state(archive) == state


def test_a_locked_run_is_running(tmp_path: Path) -> None:
    archive = crafted(tmp_path)
    with run_lock(archive.path):
        assert run_state(archive) == "running" and read_status(archive).state == "running"
    assert run_state(archive) == "new"
