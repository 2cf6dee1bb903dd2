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
        first = archive.add_adapter({"round": 1, "path": "/a/round_1", "examples": 3, "loss_curve": [2.0, 1.5]}, 5, 10)
        archive.add_adapter({"round": 2, "path": "/a/round_2", "examples": 5, "parent": "/a/round_1"}, 15, 20)
    rows = registry.evidence(archive)
    assert [(r.round, r.from_sample, r.to_sample) for r in rows] == [(0, 0, 10), (1, 10, 20), (2, 20, None)]
    before, one, two = rows
    assert before.with_adapter is None and (before.round, before.adapter) == (0, "")
    assert (before.base.programs, before.base.valid_share, before.base.mean_score, before.base.beat_parent) == (2, 0.5, -8.0, 0.5)
    assert one.with_adapter is not None and two.with_adapter is not None and one.adapter == "/a/round_1"
    assert (one.with_adapter.programs, one.with_adapter.valid_share, one.with_adapter.best_score) == (2, 1.0, -5.0)
    assert one.with_adapter.mean_score == pytest.approx(-8.5) and one.with_adapter.beat_parent == 0.5
    assert (one.base.programs, one.base.valid_share, one.base.mean_score, one.base.beat_parent) == (2, 0.5, -9.0, 0.5)
    assert (two.with_adapter.programs, two.with_adapter.beat_parent, two.base.programs, two.base.valid_share) == (1, 1.0, 0, None)
    # `evolve status --json` keeps its flat rows: round 0 has base_* figures only.
    assert before.to_json() == {"round": 0, "adapter": "", "from_sample": 0, "to_sample": 10, "base_programs": 2,
                                "base_valid_share": 0.5, "base_mean_score": -8.0, "base_best_score": -8.0, "base_beat_parent": 0.5}
    flat = one.to_json()
    assert list(flat)[:4] == ["round", "adapter", "from_sample", "to_sample"]
    assert [k for k in flat if k.startswith("adapter_")] == [f"adapter_{k}" for k in registry.ARM_FIELDS]
    assert flat["adapter_valid_share"] == 1.0 and flat["base_mean_score"] == -9.0
    stored = archive.adapters()
    assert stored[0] == first  # what add_adapter returned is what was stored (the creation time included)
    assert stored[0].loss_curve == (2.0, 1.5) and (stored[0].started_sample, stored[0].finished_sample) == (5, 10)
    assert stored[1].parent == "/a/round_1" and stored[1].loss_curve == () and stored[1].examples == 5
    latest = archive.latest_adapter()
    assert latest is not None and latest.path == "/a/round_2"
    assert archive.is_registry_table() and archive.adapter_proposers() == ["transformers"]
    shown = registry.shown_table(archive)
    assert shown.columns[: len(registry.SHOWN)] == registry.SHOWN and "loss_curve" not in shown.columns
    cells = [dict(zip(shown.columns, row)) for row in shown.rows]
    assert [r["round"] for r in cells] == [2, 1] and cells[1]["adapter_valid_share"] == 1.0
    assert cells[0]["adapter_programs"] == 1 and cells[0]["base_valid_share"] is None


def test_no_table_no_evidence(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "r.db", {"spec": {}, "config": {}})
    assert not archive.has_adapters()
    assert registry.evidence(archive) == [] and archive.adapters() == [] and archive.latest_adapter() is None


def test_an_adapters_table_of_another_shape_is_shown_as_it_is(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "r.db", {"spec": {}, "config": {}})
    archive.conn.execute("CREATE TABLE adapters (name TEXT, note TEXT)")  # written by some other tool
    archive.conn.executemany("INSERT INTO adapters VALUES (?, ?)", [("a", "first"), ("b", "second")])
    assert archive.has_adapters() and not archive.is_registry_table()
    raw = archive.raw_adapters()
    assert raw.columns == ("name", "note") and raw.rows == (("b", "second"), ("a", "first"))  # newest first
    assert archive.adapters() == [] and archive.latest_adapter() is None  # no round of the registry's
    assert registry.evidence(archive) == []  # nothing for `evolve status`


def test_a_registry_table_from_before_a_column_reads_none_for_it(tmp_path: Path) -> None:
    archive = Archive.create(tmp_path / "r.db", {"spec": {}, "config": {}})
    archive.conn.execute("CREATE TABLE adapters (round INTEGER PRIMARY KEY, path TEXT, finished_sample INTEGER)")
    archive.conn.execute("INSERT INTO adapters VALUES (1, '/a/round_1', 10)")
    assert archive.is_registry_table()
    [row] = archive.adapters()
    assert (row.round, row.path, row.finished_sample, row.method, row.loss_curve) == (1, "/a/round_1", 10, None, ())
