"""Training records from a real archive written by a short run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve import session
from evolve.archive import Archive
from evolve.config import RunConfig
from finetune import sft_records, write_jsonl


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    db = tmp_path_factory.mktemp("ft") / "run.db"
    config = RunConfig().replace(
        islands={"num_islands": 2}, loop={"budget": 200, "seed": 3}, sandbox={"workers": 2}
    )
    archive, spec = session.new_run("bin_packing_weibull", db, config)
    with session.pool_for(config) as pool:
        session.open_evolution(archive, spec, config, pool, fresh=True).run()
    return Archive.open(db, readonly=True)


def test_records_beat_their_parents(archive: Archive, tmp_path: Path) -> None:
    records = sft_records(archive, top_share=1.0)
    assert records, "a 200-sample Weibull run improves on best fit at least once"
    for r in records:
        row = archive.program(r.program_id)
        parents = archive.programs(row["parents"])
        assert r.score == row["score"] > max(p["score"] for p in parents.values()) == r.parent_best
        assert r.completion == row["function"]
    assert [r.score for r in records] == sorted((r.score for r in records), reverse=True)
    assert len({r.program_id for r in records}) == len(records)
    assert len(sft_records(archive, top_share=1.0, cap=1)) == 1
    path = tmp_path / "sft.jsonl"
    write_jsonl(records, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["program_id"] for line in lines] == [r.program_id for r in records]


def test_top_share_is_validated(archive: Archive) -> None:
    with pytest.raises(ValueError, match="top_share"):
        sft_records(archive, top_share=0)
