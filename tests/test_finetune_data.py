"""Training-data rules on a crafted archive (a real SQLite file): which programs qualify, dedupe, cap, pairs.

Fast (< 1 s): no model, no sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve.archive import Archive, NewProgram
from evolve.prompt import completion_text
from finetune.data import preference_pairs, prompt_and_completion, sft_examples, write_jsonl
from sandbox import Evaluation, FailureKind

PREFACE = "import numpy as np\n\n\ndef evaluate(xs):\n    return f(xs)\n"
NAME = "f"


def fn(body: str) -> str:
    return f"def f(x):\n    \"\"\"Approximate.\"\"\"\n    return {body}\n"


class Crafted:
    """An archive written row by row: score None is a failed program."""

    def __init__(self, path: Path) -> None:
        self.archive = Archive.create(path, {"spec": {}, "config": {}})
        self.n = 0

    def add(self, body: str, score: float | None, parents: tuple[int, ...] = (), sample: int | None = None,
            hash_: str | None = None) -> int:
        ev = Evaluation({"a": score}) if score is not None else Evaluation(failure=FailureKind.ERROR, error="boom")
        self.n += 1
        with self.archive.transaction():
            return self.archive.add_program(NewProgram(
                hash=hash_ or f"h{self.n}", function=fn(body), parents=parents, island=0, proposer="transformers",
                model="m", sample=self.n if sample is None else sample, evaluation=ev,
            ))


@pytest.fixture
def run(tmp_path: Path) -> Crafted:
    return Crafted(tmp_path / "crafted.db")


def ids(records: list) -> list[int]:
    return [r.program_id for r in records]


def test_sft_keeps_valid_programs_that_beat_their_best_parent_in_the_top_share(run: Crafted) -> None:
    seed = run.add("x", -10.0, sample=0)
    worse = run.add("x * 2", -12.0, (seed,))  # valid but below its parent
    better = run.add("x * x", -5.0, (seed,))  # beats the parent
    failed = run.add("x / 0", None, (seed,))  # failed: never a completion
    second = run.add("x * x + 1", -2.0, (seed, better))  # beats the best of its two parents
    tie = run.add("x * x + 0", -2.0, (better, second))  # equals its best parent: not an improvement
    small = run.add("x + 1", -9.0, (seed,))  # beats its parent but sits in the bottom of the scores
    del worse, failed, tie
    # Valid scores: -10, -12, -5, -2, -2, -9: the top half is -2, -2, -5.
    examples = sft_examples(run.archive, PREFACE, NAME, top_share=0.5)
    assert ids(examples) == [second, better]  # best first
    assert small not in ids(sft_examples(run.archive, PREFACE, NAME, top_share=0.5))
    assert small in ids(sft_examples(run.archive, PREFACE, NAME, top_share=1.0))
    first = examples[0]
    assert first.parent_best == -5.0 and first.score == -2.0
    # The prompt is the loop's own, rebuilt from the parents worst first; the completion is the body under its header.
    assert first.prompt == completion_text(PREFACE, [fn("x"), fn("x * x")], NAME)
    assert first.prompt.endswith('def f_v2(x):\n    """Improved version of `f_v1`."""\n')
    assert first.completion == "    return x * x + 1\n"


def test_windows_are_cumulative_and_each_has_its_own_top_share(run: Crafted) -> None:
    seed = run.add("x", -10.0, sample=0)
    early = [run.add(f"x + {i}", -9.0 + i, (seed,), sample=i) for i in range(1, 5)]  # -8 .. -5, samples 1-4
    late = [run.add(f"x * {i}", -9.5 + i / 10, (seed,), sample=10 + i) for i in range(1, 5)]  # -9.4 .. -9.1
    # One window: the top quarter of all 9 valid scores is the 2 best, both early.
    assert ids(sft_examples(run.archive, PREFACE, NAME, top_share=0.25)) == [early[3], early[2]]
    # Rounds after samples 5: each window keeps its own top share, so the late window's best comes in too.
    got = ids(sft_examples(run.archive, PREFACE, NAME, boundaries=[0, 5], top_share=0.25))
    assert got == [early[3], late[3]]  # windows [0, 5): 5 valid -> 1; [5, ...): 4 valid -> 1


def test_dedupe_by_normalized_hash_and_cap(run: Crafted) -> None:
    seed = run.add("x", -10.0, sample=0)
    a = run.add("x * x", -3.0, (seed,), hash_="stored-a")
    # The same function up to a comment and spacing: another stored hash, one normalized program.
    b = run.add("x*x  # again", -3.0, (seed,), hash_="stored-b")
    c = run.add("x * x * x", -4.0, (seed,))
    examples = sft_examples(run.archive, PREFACE, NAME, top_share=1.0)
    assert ids(examples) == [a, c] and b not in ids(examples)
    assert ids(sft_examples(run.archive, PREFACE, NAME, top_share=1.0, cap=1)) == [a]


def test_preference_pairs_per_prompt_with_failed_ones_rejected(run: Crafted) -> None:
    seed = run.add("x", -10.0, sample=0)
    other = run.add("x + 1", -9.0, sample=0)
    good = run.add("x * x", -3.0, (seed, other))
    fair = run.add("x * 2", -6.0, (seed, other))
    broken = run.add("x / y", None, (seed, other))
    alone = run.add("x * 3", -4.0, (other,))  # the only answer to its prompt: no pair
    pairs = preference_pairs(run.archive, PREFACE, NAME, pairs_per_prompt=10)
    got = {(p.chosen_id, p.rejected_id) for p in pairs}
    assert got == {(good, broken), (fair, broken), (good, fair)}
    assert all(alone not in k for k in got)
    assert [(p.chosen_id, p.rejected_id) for p in pairs][-1] == (good, fair)  # widest gaps first, failures widest
    pair = next(p for p in pairs if (p.chosen_id, p.rejected_id) == (good, fair))
    assert pair.prompt == completion_text(PREFACE, [fn("x"), fn("x + 1")], NAME)
    assert (pair.chosen, pair.rejected) == ("    return x * x\n", "    return x * 2\n")
    assert len(preference_pairs(run.archive, PREFACE, NAME, pairs_per_prompt=1)) == 1
    assert len(preference_pairs(run.archive, PREFACE, NAME, pairs_per_prompt=10, cap=2)) == 2


def test_jsonl_is_what_trl_reads(run: Crafted, tmp_path: Path) -> None:
    seed = run.add("x", -10.0, sample=0)
    run.add("x * x", -3.0, (seed,))
    run.add("x / y", None, (seed,))
    sft, dpo = tmp_path / "sft.jsonl", tmp_path / "dpo.jsonl"
    assert write_jsonl(sft_examples(run.archive, PREFACE, NAME, top_share=1.0), sft) == 1
    assert write_jsonl(preference_pairs(run.archive, PREFACE, NAME), dpo) == 1
    assert [set(json.loads(line)) for line in sft.read_text().splitlines()] == [{"prompt", "completion"}]
    assert [set(json.loads(line)) for line in dpo.read_text().splitlines()] == [{"prompt", "chosen", "rejected"}]
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_child_with_another_signature_has_no_completion() -> None:
    assert prompt_and_completion(PREFACE, [fn("x")], "def f(x, y):\n    return x\n", NAME) is None
    assert prompt_and_completion(PREFACE, [fn("x")], fn("x + 2"), NAME) is not None


def test_top_share_is_validated(run: Crafted) -> None:
    with pytest.raises(ValueError, match="top_share"):
        sft_examples(run.archive, PREFACE, NAME, top_share=0)
