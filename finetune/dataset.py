"""Supervised training records: the programs that improved on their parents.

A record pairs the parent functions a proposer was shown (worst first, as in
the prompt) with the function it wrote, when that function is valid, beats
the best parent, and sits in the top share of all valid scores. Records are
deduplicated by the archive's normalized hash (one row per unique program).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from evolve.archive import Archive


@dataclass(frozen=True)
class SFTRecord:
    """One (parents -> completion) example."""

    program_id: int
    parents: tuple[str, ...]  # parent function sources, worst first
    completion: str  # the improved function
    score: float
    parent_best: float
    proposer: str


def sft_records(archive: Archive, top_share: float = 0.5, cap: int | None = None) -> list[SFTRecord]:
    """Return improvement records from the archive, best first."""
    if not 0 < top_share <= 1:
        raise ValueError(f"top_share must be in (0, 1], got {top_share}")
    (valid,) = archive.conn.execute("SELECT COUNT(*) FROM programs WHERE score IS NOT NULL").fetchone()
    candidates = archive.top(max(1, int(valid * top_share)))
    parents = archive.programs(sorted({p for row in candidates for p in row["parents"]}))
    records = []
    for row in candidates:
        shown = [parents[p] for p in row["parents"] if p in parents and parents[p]["score"] is not None]
        if not shown:
            continue  # the seed, or parents that are gone
        shown.sort(key=lambda r: r["score"])
        best_parent = shown[-1]["score"]
        if row["score"] > best_parent:
            records.append(SFTRecord(row["id"], tuple(r["function"] for r in shown), row["function"],
                                     row["score"], best_parent, row["proposer"]))
    return records[:cap] if cap is not None else records


def write_jsonl(records: Sequence[SFTRecord], path: Path) -> None:
    """Write records as JSON lines, atomically (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for record in records:
            f.write(json.dumps(asdict(record)) + "\n")
    os.replace(tmp, path)
