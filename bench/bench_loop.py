"""Loop overhead benchmark: what the loop costs per candidate beyond the sandbox's own cost.

    .venv/bin/python bench/bench_loop.py [--candidates 2000] [--workers 2] [--batch 8x4] [--repeats 3]

An instant proposer returns prepared candidates (chat-style answers: prose
and a fenced function, all different), so nothing but the loop and the
sandbox is measured, on a trivial problem (a one-line function of one
number). Two measurements with the same workers:

1. the sandbox alone: every candidate's program submitted straight to the
   pool, wall time until the last result;
2. the whole loop: island sampling, prompt building, proposing, parsing,
   dedupe, sandbox, registration and one SQLite transaction per batch.

The two alternate `--repeats` times and the medians are kept, since the
machine may be shared. The difference per candidate is the loop's overhead
(target: under 2 ms), in wall time and in CPU time of the loop's process
(the sandbox workers are other processes); the CPU figure does not move
with other load on the machine, the wall figure does.
The loop's stages are timed in its own thread (the share of its wall time
each takes; waiting for the sandbox is one of them). Prints a table, writes
bench/results/<date>-<machine>-loop.json and rewrites bench/RESULTS.md's loop
benchmark section (`--from FILE` re-renders it without running).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import evolve.loop
from evolve import session
from evolve.config import RunConfig
from evolve.loop import Evolution
from evolve.parse import extract_function
from evolve.proposers.base import Prompt, TextProposer
from evolve.spec import load_spec
from islands import ProgramsDatabase
from sandbox import Limits, SandboxPool

from common import TRIVIAL_SPEC, replace_results_section

RESULTS = Path(__file__).parent / "results"
console = Console()
SPEC = TRIVIAL_SPEC


class InstantProposer(TextProposer):
    """Return prepared candidates at once: what a model would have written, all different."""

    name, model = "instant", ""

    def __init__(self, count: int) -> None:
        self.answers = [
            f"Here is a better version:\n```python\ndef f_v1(x: float) -> float:\n"
            f'    """Improved version of `f_v0`."""\n    return x * {1 + i / count:.9f} + {i % 7}\n```\nIt is closer to 3.'
            for i in range(count)
        ]
        self.seconds = 0.0

    def write(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        started = time.perf_counter()
        out = []
        for _ in prompts:
            out.append(self.answers[:n])
            del self.answers[:n]
        self.seconds += time.perf_counter() - started
        return out


def timed(table: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `fn` so that its wall time adds up under `stage`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[stage] += time.perf_counter() - started

    return wrapper


def sandbox_alone(spec: Any, sources: list[str], workers: int) -> tuple[float, float]:
    """Evaluate every candidate straight through the pool; return the wall time and this process's CPU time."""
    inputs = spec.inputs("train")
    with SandboxPool(workers, Limits(timeout_s=30)) as pool:
        pool.evaluate(spec.program(spec.function), spec.entry, inputs)  # warm the workers, as the loop's seed does
        started, cpu = time.perf_counter(), time.process_time()
        futures = [pool.submit(spec.program(s), spec.entry, inputs) for s in sources]
        assert all(f.result().ok for f in futures)
        return time.perf_counter() - started, time.process_time() - cpu


def whole_loop(spec: Any, count: int, workers: int, prompts: int, samples: int, tmp: Path) -> dict[str, Any]:
    """Run the loop with the instant proposer; return its wall time, stages and counters."""
    config = RunConfig().replace(
        loop={"budget": count, "prompts_per_batch": prompts, "samples_per_prompt": samples},
        sandbox={"workers": workers, "timeout_s": 30.0},
    )
    archive, _ = session.new_run(str(tmp / "trivial.py"), tmp / "loop.db", config)
    stages: dict[str, float] = defaultdict(float)
    proposer = InstantProposer(count)
    patches = {
        (ProgramsDatabase, "sample"): "island sampling",
        (Evolution, "_prompt"): "prompt (with sampling)",
        (evolve.loop, "parse_candidate"): "parsing",
        (Evolution, "_submit"): "dedupe and submit",
        (Evolution, "_register"): "register and archive (with waiting)",
    }
    originals = {key: getattr(*key) for key in patches}
    try:
        for (owner, attr), stage in patches.items():
            setattr(owner, attr, timed(stages, stage, originals[(owner, attr)]))
        with SandboxPool(workers, Limits(timeout_s=30)) as pool:
            rng = np.random.default_rng(0)
            evolution = Evolution(spec, archive, pool, proposer, ProgramsDatabase(config.islands, rng), rng, config)
            evolution.seed()
            started, cpu = time.perf_counter(), time.process_time()
            evolution.run()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        for (owner, attr), fn in originals.items():
            setattr(owner, attr, fn)
    stats = evolution.stats
    assert stats.evaluated == stats.valid == count + 1, (stats.evaluated, stats.valid, stats.rejected)  # + the seed
    own = {
        "island sampling": stages["island sampling"],
        "prompt building": stages["prompt (with sampling)"] - stages["island sampling"],
        "proposer (instant)": proposer.seconds,
        "parsing": stages["parsing"],
        "dedupe and submit": stages["dedupe and submit"],
        "register and archive": stages["register and archive (with waiting)"] - stats.proposer_waited_s,
    }
    own["waiting for the sandbox"] = stats.proposer_waited_s
    own["other (progress, batch commit)"] = max(0.0, wall - sum(own.values()))
    return {"wall_s": wall, "cpu_s": cpu, "stages_s": own, "sandbox_idle_s": stats.sandbox_waited_s, "batches": stats.batches}


def measure(count: int, workers: int, prompts: int, samples: int, repeats: int) -> dict[str, Any]:
    """Alternate the two measurements `repeats` times; keep the medians (the machine may be shared)."""
    alones: list[float] = []
    alone_cpus: list[float] = []
    loops: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "trivial.py").write_text(SPEC)
        spec = load_spec(tmp / "trivial.py")
        sources = [extract_function(a, "f").function or "" for a in InstantProposer(count).answers]
        for i in range(repeats):
            wall, cpu = sandbox_alone(spec, sources, workers)
            alones.append(wall)
            alone_cpus.append(cpu)
            (tmp / f"run{i}").mkdir()
            (tmp / f"run{i}" / "trivial.py").write_text(SPEC)
            loops.append(whole_loop(spec, count, workers, prompts, samples, tmp / f"run{i}"))
            console.print(f"round {i + 1}/{repeats}: sandbox alone {alones[-1]:.2f}s (CPU here {alone_cpus[-1]:.2f}s), "
                          f"whole loop {loops[-1]['wall_s']:.2f}s (CPU here {loops[-1]['cpu_s']:.2f}s)")
    alone = statistics.median(alones)
    loop = sorted(loops, key=lambda r: r["wall_s"])[len(loops) // 2]
    own = sum(v for k, v in loop["stages_s"].items() if k not in ("waiting for the sandbox", "proposer (instant)"))
    return {
        "candidates": count, "workers": workers, "prompts_per_batch": prompts, "samples_per_prompt": samples,
        "repeats": repeats, "sandbox_alone_runs_s": alones, "loop_runs_s": [r["wall_s"] for r in loops],
        "sandbox_alone_s": alone, "loop_s": loop["wall_s"], "batches": loop["batches"],
        "sandbox_per_candidate_ms": 1e3 * alone / count,
        "loop_per_candidate_ms": 1e3 * loop["wall_s"] / count,
        "overhead_per_candidate_ms": 1e3 * (loop["wall_s"] - alone) / count,
        # CPU time of this process (the workers are other processes): what the loop adds, whatever the load.
        "cpu_overhead_per_candidate_ms": 1e3 * (statistics.median(r["cpu_s"] for r in loops) - statistics.median(alone_cpus)) / count,
        "loop_thread_work_per_candidate_ms": 1e3 * own / count,
        "candidates_per_s": count / loop["wall_s"], "sandbox_alone_per_s": count / alone,
        "stages_s": loop["stages_s"], "sandbox_idle_s": loop["sandbox_idle_s"],
    }


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as bench/RESULTS.md's loop benchmark tables."""
    r = results["loop"]
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}); {r['candidates']} candidates, "
        f"{r['workers']} sandbox workers, batches of {r['prompts_per_batch']} prompts x {r['samples_per_prompt']} samples; "
        f"medians of {r['repeats']} alternating rounds.",
        "",
        "| | candidates/s | ms per candidate |",
        "| --- | ---: | ---: |",
        f"| sandbox alone (fork, run, result) | {r['sandbox_alone_per_s']:.0f} | {r['sandbox_per_candidate_ms']:.2f} |",
        f"| whole loop | {r['candidates_per_s']:.0f} | {r['loop_per_candidate_ms']:.2f} |",
        f"| loop overhead, wall time (difference) | | {r['overhead_per_candidate_ms']:.2f} |",
        f"| **loop overhead, CPU time of the loop's process** (difference) | | **{r['cpu_overhead_per_candidate_ms']:.2f}** |",
        f"| loop thread's own work (overlaps the sandbox) | | {r['loop_thread_work_per_candidate_ms']:.2f} |",
        "",
        f"Where the loop's thread spends its time (wall time: on a busy machine it includes waiting for a CPU; "
        f"the load average was {results.get('load_average', float('nan')):.1f} on {os.cpu_count()} cores):",
        "",
        "| stage | share | ms per candidate |",
        "| --- | ---: | ---: |",
    ]
    total = sum(r["stages_s"].values())
    for stage, seconds in r["stages_s"].items():
        lines.append(f"| {stage} | {seconds / total:.1%} | {1e3 * seconds / r['candidates']:.3f} |")
    return "\n".join(lines)


def update_results_page(results: dict) -> None:
    replace_results_section("bench-loop", markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", default="8x4", help="prompts per batch x samples per prompt")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; the medians are kept")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    if args.from_file:
        update_results_page(json.loads(args.from_file.read_text()))
        return
    prompts, samples = (int(x) for x in args.batch.split("x"))
    r = measure(args.candidates, args.workers, prompts, samples, args.repeats)

    table = Table(title=f"Loop overhead: {r['candidates']} candidates, {r['workers']} workers, batches {args.batch}")
    for col in ("", "candidates/s", "ms per candidate"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("sandbox alone", f"{r['sandbox_alone_per_s']:.0f}", f"{r['sandbox_per_candidate_ms']:.2f}")
    table.add_row("whole loop", f"{r['candidates_per_s']:.0f}", f"{r['loop_per_candidate_ms']:.2f}")
    table.add_row("loop overhead, wall", "", f"{r['overhead_per_candidate_ms']:.2f}")
    table.add_row("loop overhead, CPU", "", f"{r['cpu_overhead_per_candidate_ms']:.2f}")
    table.add_row("loop thread's own work", "", f"{r['loop_thread_work_per_candidate_ms']:.2f}")
    console.print(table)
    stages = Table(title="The loop thread's time by stage")
    for col in ("stage", "share", "ms per candidate"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    total = sum(r["stages_s"].values())
    for stage, seconds in r["stages_s"].items():
        stages.add_row(stage, f"{seconds / total:.1%}", f"{1e3 * seconds / r['candidates']:.3f}")
    console.print(stages)

    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-loop.json"
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
        "load_average": os.getloadavg()[0], "loop": r,  # other work on the machine inflates the wall times
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    update_results_page(results)
    console.print(f"wrote {out} and bench/RESULTS.md's loop benchmark section")


if __name__ == "__main__":
    main()
