"""Training data for a LoRA round, read from a run archive (never written).

    examples = sft_examples(archive, preface, "priority", boundaries=[0, 480], top_share=0.25, cap=512)
    write_jsonl(examples, "sft.jsonl")   # {"prompt": ..., "completion": ...}, as TRL reads it

A prompt is rebuilt exactly as the loop built it (`evolve.prompt.completion_text`
over the parents the archive recorded, worst first); the completion is what a
completion model writes after the prompt's header: the body of the program.

SFT rules, per window of samples between two rounds (`boundaries`): a program
qualifies when it is valid, scores above the best parent shown in its
prompt, and sits in the window's top `top_share` of valid scores. The windows
are cumulative (a round trains on every earlier window's selection too),
programs are deduplicated by the normalized hash of their function, and the
`cap` best are kept.

Preference pairs (DPO, as EvoTune builds them): programs answering the same
prompt (same parents in the same order) are ranked; a failed one ranks
below every valid one; each better valid answer is paired with the worse
ones, at most `pairs_per_prompt` per prompt, widest score gaps first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evolve.archive import Archive, ProgramRow
from evolve.parse import program_hash
from evolve.prompt import completion_text, header, versioned

FAILED = float("-inf")  # the rank of a failed program among the answers to one prompt


@dataclass(frozen=True)
class Example:
    """One supervised (prompt -> completion) example."""

    program_id: int
    prompt: str
    completion: str
    score: float
    parent_best: float
    sample: int

    def to_json(self) -> dict[str, str]:
        return {"prompt": self.prompt, "completion": self.completion}


@dataclass(frozen=True)
class Pair:
    """One preference example: a better and a worse completion of the same prompt."""

    chosen_id: int
    rejected_id: int
    prompt: str
    chosen: str
    rejected: str
    margin: float  # chosen score - rejected score (inf when the rejected one failed)

    def to_json(self) -> dict[str, str]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def sft_examples(
    archive: Archive, preface: str, name: str, boundaries: Sequence[int] = (0,), top_share: float = 0.25,
    cap: int = 512, improving_only: bool = True,
) -> list[Example]:
    """Return the qualifying (prompt -> completion) examples, best first, at most `cap`.

    With `improving_only` (the default) a completion qualifies only if it beats
    its best parent; without, every valid program of the window's top share does
    (for a weak model that rarely improves on its parents: it still learns to
    write valid functions of this problem).
    """
    if not 0 < top_share <= 1:
        raise ValueError(f"top_share must lie in (0, 1], got {top_share}")
    edges = sorted(set(boundaries) | {0})
    chosen: list[ProgramRow] = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        chosen += _window_top(archive, lo, hi, top_share)
    parents = archive.programs(sorted({p for row in chosen for p in row.parents}))
    out: list[Example] = []
    seen: set[str] = set()
    for row in sorted(chosen, key=lambda r: (-_rank(r), r.id)):
        shown = [parents.get(p) for p in row.parents]
        scored = [p for p in shown if p is not None and p.score is not None]
        if not shown or len(scored) < len(shown):
            continue  # the seed (no prompt), or a parent that is gone
        best_parent = max(_rank(p) for p in scored)
        if improving_only and _rank(row) <= best_parent:
            continue
        key = program_hash(row.function)
        if key in seen:
            continue
        pair = prompt_and_completion(preface, [p.function for p in scored], row.function, name)
        if pair is None:
            continue
        seen.add(key)
        out.append(Example(row.id, pair[0], pair[1], _rank(row), best_parent, row.sample))
        if len(out) >= cap:
            break
    return out


def preference_pairs(
    archive: Archive, preface: str, name: str, pairs_per_prompt: int = 4, cap: int = 512,
) -> list[Pair]:
    """Return (chosen, rejected) pairs over answers to the same prompt, widest gaps first, at most `cap`."""
    groups: dict[tuple[int, ...], list[ProgramRow]] = {}  # the same parents in the same order: the same prompt
    for row in archive.children():
        groups.setdefault(row.parents, []).append(row)
    parent_ids = sorted({p for key, rows in groups.items() if len(rows) > 1 for p in key})
    parents = archive.programs(parent_ids)
    out: list[Pair] = []
    for key, rows in groups.items():
        if len(rows) < 2:
            continue
        shown = [parents[p] for p in key if p in parents]
        if len(shown) < len(key):
            continue
        functions = [p.function for p in shown]
        ranked = _distinct(sorted(rows, key=lambda r: (-_rank(r), r.id)))
        candidates = []
        for i, better in enumerate(ranked):
            if better.score is None:
                break  # failed ones are only ever rejected
            for worse in ranked[i + 1 :]:
                if _rank(better) > _rank(worse):
                    candidates.append((_rank(better) - _rank(worse), better, worse))
        candidates.sort(key=lambda c: (-c[0], c[1].id, c[2].id))
        for margin, better, worse in candidates[:pairs_per_prompt]:
            good = prompt_and_completion(preface, functions, better.function, name)
            bad = prompt_and_completion(preface, functions, worse.function, name)
            if good is None or bad is None:
                continue
            out.append(Pair(better.id, worse.id, good[0], good[1], bad[1], margin))
    out.sort(key=lambda p: (-p.margin, p.chosen_id, p.rejected_id))
    return out[:cap]


def prompt_and_completion(preface: str, parents: Sequence[str], child: str, name: str) -> tuple[str, str] | None:
    """Rebuild the loop's completion prompt and cut the child's body after its header (None: no common header)."""
    try:
        k = len(parents)
        prompt = completion_text(preface, parents, name)
        head = header(parents[-1], name, k)
        whole = versioned(child, name, k)  # renamed to <name>_v{k}, with the header's docstring
    except (SyntaxError, ValueError):
        return None
    if not whole.startswith(head) or not whole[len(head) :].strip():
        return None  # a child whose signature differs from the prompt's header
    return prompt, whole[len(head) :]


def write_jsonl(records: Iterable[Example | Pair], path: Path | str) -> int:
    """Write records as TRL-style JSON lines, atomically; return how many."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with tmp.open("w") as f:
        for record in records:
            f.write(json.dumps(record.to_json()) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def _window_top(archive: Archive, lo: int, hi: int | None, top_share: float) -> list[ProgramRow]:
    """Return the valid programs of samples [lo, hi) whose score is in the window's top share."""
    valid = archive.count_valid(lo, hi)
    if not valid:
        return []
    return archive.window_best(lo, hi, max(1, int(valid * top_share)))


def _rank(row: ProgramRow) -> float:
    return FAILED if row.score is None else float(row.score)


def _distinct(rows: list[ProgramRow]) -> list[ProgramRow]:
    """Keep the first of each normalized function (a pair of equal programs teaches nothing)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        try:
            key = program_hash(row.function)
        except (SyntaxError, StopIteration):
            key = row.function
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
