"""Build a large, realistic run archive quickly: for the TUI's benchmark and snapshot tests.

    .venv/bin/python -m tui.synthetic /tmp/big.db --programs 1000000

The archive is what the loop would have written for `bin_packing_or` with
the GP proposer (same schema, same indexes, same JSON columns), but the
scores are drawn, not evaluated: a quality that improves with the sample
index plus noise, quantized as bin counts are, so islands hold a realistic
number of clusters. The islands are a real `ProgramsDatabase` fed with those
scores (resets included), so `members`, `state` and the `reset` events are
consistent and `evolve status` restores them as it would a real run's.
Rows go in with one executemany in one transaction (`Archive.add_rows`),
the indexes built afterwards (`Archive.without_indexes`).
Everything but the `created` and event times follows from the seed, which is
what the snapshot tests need (a real run's programs change whenever the
proposer does).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from evolve.archive import Archive, ProgramRow
from evolve.config import RunConfig
from evolve.loop import Stats, islands_summary_rows
from evolve.spec import load_spec
from islands import ProgramsDatabase

log = logging.getLogger(__name__)

INPUTS = ("train_0", "train_1", "train_2", "train_3")
# Share of samples per failure kind; the rest are valid programs.
FAILURES = {"error": 0.06, "timeout": 0.02, "invalid-output": 0.015, "memory": 0.005}
MESSAGES = {
    "error": "ZeroDivisionError: division by zero (line {line})",
    "timeout": "no result within 30.0 s",
    "invalid-output": "InvalidOutput: priority returned shape ({line},), expected (120,)",
    "memory": "MemoryError: the candidate went past 1024 MiB",
}
TERMS = ("bins - item", "np.log(bins)", "item * 2.0", "np.sqrt(np.abs(bins))", "bins ** 2 / item", "np.minimum(bins, item)")


def _function(rng: np.random.Generator, i: int) -> str:
    """Return a plausible evolved function of 150-900 characters, unique by i."""
    terms = [TERMS[int(t)] for t in rng.integers(len(TERMS), size=int(rng.integers(1, 12)))]
    body = " + ".join(f"({t}) * {c:.4f}" for t, c in zip(terms, rng.normal(size=len(terms))))
    return (
        "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
        '    """Return the priority of each bin for the item."""\n'
        f"    base = {body}\n"
        f"    return -(bins - item) + base * {i}e-9\n"
    )


def build(path: Path, programs: int, seed: int = 0, islands: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a synthetic archive of `programs` programs at `path` (islands config overrides); return counts."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    config = RunConfig().replace(loop={"budget": programs, "seed": seed}, sandbox={"workers": 2}, islands=islands or {})
    spec = load_spec("bin_packing_or")
    archive = Archive.create(path, {
        "spec": {"name": spec.name, "path": str(spec.path), "builtin": True, "source": spec.source, "inputs_file": None},
        "config": config.to_dict(),
    })
    # Quality rises like log(sample) with noise; scores are minus mean bins per input (steps of 1/5).
    samples = np.arange(programs)
    level = 3.0 * np.log1p(samples / max(1.0, programs / 500))  # (N,): the same shape at any run length
    noise = rng.normal(scale=1.5, size=(programs, len(INPUTS)))
    scores = -(60.0 - np.round(level[:, None] + noise - 2.0) / 5.0)  # (N, inputs)
    kinds = list(FAILURES)
    draw = rng.random(programs)
    edges = np.cumsum([FAILURES[k] for k in kinds])
    failure_index = np.searchsorted(edges, draw, side="right")  # len(kinds) means valid
    islands_of = rng.integers(config.islands.num_islands, size=programs)
    walls = rng.gamma(2.0, 0.02, size=programs)

    db = ProgramsDatabase(config.islands, np.random.default_rng(seed))
    rows: list[ProgramRow] = []
    events: list[tuple[float, int, str, dict[str, Any]]] = [(0.0, 0, "start", {}), (0.0, 0, "run", {})]
    now = time.time() - programs * 0.05
    valid = 0
    failures: dict[str, int] = {}
    best: tuple[float, int] | None = None
    for i in range(programs):
        pid = i + 1
        function = _function(rng, i)
        island: int | None = None if i == 0 else int(islands_of[i])
        parents = [] if i == 0 else [max(1, pid - int(rng.integers(1, 500))), max(1, pid - int(rng.integers(1, 50)))]
        kind = None if i == 0 or failure_index[i] == len(kinds) else kinds[failure_index[i]]
        row_scores = {} if kind else {name: float(s) for name, s in zip(INPUTS, scores[i])}
        score = sum(row_scores.values()) / len(row_scores) if row_scores else None
        error = MESSAGES[kind].format(line=int(rng.integers(2, 200))) if kind else ""
        rows.append(ProgramRow(
            pid, f"{pid:016x}{seed:08x}", function, tuple(parents), island, "seed" if i == 0 else "gp", "", "",
            i, row_scores, score, kind, error, float(walls[i]), len(function), 0, now + i * 0.05, None,
        ))
        if kind:
            failures[kind] = failures.get(kind, 0) + 1
        else:
            valid += 1
            db.register(pid, row_scores, len(function), island)
            if score is not None and (best is None or score > best[0]):
                best = (score, pid)
        if i > 0:
            for reset in db.note_samples(1):
                events.append((now + i * 0.05, i + 1, "reset", {"island": reset.island, "founder": reset.founder_id}))
    events.append((now + programs * 0.05, programs, "stop", {"reason": "budget"}))
    log.info("generated %d rows in %.1fs", programs, time.perf_counter() - started)

    with archive.without_indexes(), archive.transaction():
        archive.add_rows(rows)
        for island, ids in enumerate(db.members()):
            archive.add_members(island, ids)
        for at, sample, kind, data in events:
            archive.add_event(kind, sample, data, at=at)
        stats = Stats(
            samples=programs, evaluated=programs, valid=valid, failures=failures,
            best_score=best[0] if best else None, best_id=best[1] if best else None,
            batches=math.ceil(programs / 16), elapsed_s=programs * 0.05,
        )
        archive.put_state({
            "stats": asdict(stats), "rng": np.random.default_rng(seed).bit_generator.state,
            "islands": db.state(), "islands_summary": islands_summary_rows(db),
        })
    members = archive.sizes().members
    archive.close()
    return {
        "programs": programs, "members": members, "events": len(events), "valid": valid,
        "seconds": time.perf_counter() - started, "bytes": path.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--programs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.path}{suffix}").unlink(missing_ok=True)
    log.info("%s", build(args.path, args.programs, args.seed))


if __name__ == "__main__":
    main()
