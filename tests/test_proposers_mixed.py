"""Several proposers in one run, with weights; every program says who wrote it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import evolve
from evolve.prompt import build_prompt
from evolve.errors import ConfigError
from evolve.proposers.base import Origin, Prompt, Proposal, TextProposer
from evolve.proposers.mixed import MixedProposer, ProposerMix
from openai_server import fake_openai

SEED = "def priority(item, bins):\n    return -(bins - item)\n"
PROMPTS = [build_prompt(i, (1,), (SEED,), (-1.0,), "priority", "") for i in range(200)]


class Constant(TextProposer):
    """A real, trivial proposer: always the same answer, tagged with its name."""

    def __init__(self, name: str) -> None:
        self.name, self.model = name, f"{name}-model"
        self.calls = 0

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[Proposal]:
        self.calls += 1
        origin = Origin(self.name, self.model, f"{self.name}-adapter")
        return [Proposal(origin, [f"# {self.name} {p.island}"] * n) for p in prompts]


@pytest.mark.parametrize(
    ("text", "parts"),
    [("gp", [("gp", 1.0)]), ("vllm:0.9,gp:0.1", [("vllm", 0.9), ("gp", 0.1)]), (" openai:3 , gp ", [("openai", 3.0), ("gp", 1.0)])],
)
def test_parse_mix(text: str, parts: list) -> None:
    mix = ProposerMix.parse(text)
    assert list(mix.parts) == parts
    assert ProposerMix.parse(str(mix)) == mix  # what a config file and the archive hold


@pytest.mark.parametrize(("text", "message"), [("gp:x", "not a number"), ("gp:0", "must be > 0"), ("gp,gp", "twice"), ("gp,", "empty")])
def test_parse_mix_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProposerMix.parse(text)


def test_prompts_are_routed_by_weight_in_order_and_reproducibly() -> None:
    a, b = Constant("a"), Constant("b")
    mix = MixedProposer([(a, 0.8), (b, 0.2)], seed=1)
    out = mix.propose(PROMPTS, 2)
    assert (a.calls, b.calls) == (1, 1)  # one batched call per part
    assert [p.texts for p in out] == [[f"# {p.origin.proposer} {i}"] * 2 for i, p in enumerate(out)]  # prompts' order kept
    share = sum(p.origin.proposer == "a" for p in out) / len(out)
    assert 0.65 < share < 0.95
    assert out[0].origin in (Origin("a", "a-model", "a-adapter"), Origin("b", "b-model", "b-adapter"))
    again = MixedProposer([(Constant("a"), 0.8), (Constant("b"), 0.2)], seed=1).propose(PROMPTS, 2)
    assert [p.origin for p in again] == [p.origin for p in out]


def test_evolve_run_with_openai_and_gp(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "mix.db"
    with fake_openai() as server:
        proc = evolve("run", "bin_packing_or", "--proposer", "openai:0.5,gp:0.5", "--api-base", server.url, "--model", "tiny-coder",
                      "--db", str(db), "--budget", "48", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        rows = set(conn.execute("SELECT proposer, model FROM programs WHERE proposer != 'seed'"))
    assert ("openai", "tiny-coder") in rows and {p for p, _ in rows} == {"openai", "gp"}
    status = evolve("status", str(db))
    assert "by proposer: " in status.stdout and "openai tiny-coder" in status.stdout


def test_an_unknown_part_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = evolve("run", "bin_packing_or", "--proposer", "gp:0.5,gpt:0.5", "--db", str(tmp_path / "x.db"))
    assert proc.returncode == 2 and "unknown proposer 'gpt'" in proc.stderr and "Traceback" not in proc.stderr
