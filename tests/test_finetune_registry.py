"""The adapters table and the evidence per round, on a crafted archive (a real SQLite file). Fast (< 1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolve.archive import Archive, NewProgram
from finetune import registry
from sandbox import Evaluation, FailureKind


def add(archive: Archive, n: int, score: float | None, parents: tuple[int, ...], sample: int, adapter: str = "",
        proposer: str = "transformers") -> int:
    ev = Evaluation({"a": score}) if score is not None else Evaluation(failure=FailureKind.ERROR, error="x")
    return archive.add_program(NewProgram(f"h{n}", f"def f(x):\n    return x + {n}\n", parents, 0, proposer, "m",
                                          sample, ev, adapter))


def test_evidence_compares_each_adapter_with_the_base_model_over_its_window(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "r.db", {"spec": {}, "config": {}})
    with archive.transaction():
        seed = add(archive, 0, -10.0, (), 0, proposer="seed")
        # Before any round (samples 0-9): the base model alone.
        add(archive, 1, -8.0, (seed,), 1)  # beats -10
        add(archive, 2, None, (seed,), 2)
        add(archive, 3, -1.0, (seed,), 3, proposer="gp")  # another proposer: not counted
        # Round 1 in use from sample 10 to 20: adapter vs control arm.
        add(archive, 4, -5.0, (seed,), 11, adapter="/a/round_1")
        add(archive, 5, -12.0, (seed,), 12, adapter="/a/round_1")  # valid, does not beat its parent
        add(archive, 6, -9.0, (seed,), 13)  # control arm: beats -10
        add(archive, 7, None, (seed,), 14)  # control arm: failed
        # Round 2 from sample 20 on.
        add(archive, 8, -2.0, (seed,), 21, adapter="/a/round_2")
        registry.add_adapter(archive.conn, {"round": 1, "path": "/a/round_1", "examples": 3, "loss_curve": [2.0, 1.5]}, 5, 10)
        registry.add_adapter(archive.conn, {"round": 2, "path": "/a/round_2", "examples": 5, "parent": "/a/round_1"}, 15, 20)
    rows = registry.evidence(archive.conn)
    assert [(r["round"], r["from_sample"], r["to_sample"]) for r in rows] == [(0, 0, 10), (1, 10, 20), (2, 20, None)]
    before, one, two = rows
    assert (before["base_programs"], before["base_valid_share"], before["base_mean_score"], before["base_beat_parent"]) == (2, 0.5, -8.0, 0.5)
    assert (one["adapter_programs"], one["adapter_valid_share"], one["adapter_best_score"]) == (2, 1.0, -5.0)
    assert one["adapter_mean_score"] == pytest.approx(-8.5) and one["adapter_beat_parent"] == 0.5
    assert (one["base_programs"], one["base_valid_share"], one["base_mean_score"], one["base_beat_parent"]) == (2, 0.5, -9.0, 0.5)
    assert (two["adapter_programs"], two["adapter_beat_parent"], two["base_programs"], two["base_valid_share"]) == (1, 1.0, 0, None)
    stored = registry.adapters(archive.conn)
    assert stored[0]["loss_curve"] == [2.0, 1.5] and (stored[0]["started_sample"], stored[0]["finished_sample"]) == (5, 10)
    assert registry.latest(archive.conn)["path"] == "/a/round_2"
    shown = registry.shown_rows(archive.conn)
    assert [r["round"] for r in shown] == [2, 1] and shown[1]["adapter_valid_share"] == 1.0 and "loss_curve" not in shown[0]


def test_no_table_no_evidence(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "r.db", {"spec": {}, "config": {}})
    assert not registry.has_table(archive.conn)
    assert registry.evidence(archive.conn) == [] and registry.adapters(archive.conn) == [] and registry.latest(archive.conn) is None
