"""Benchmark of the simulator problems: evaluation cost, baselines, what the GP default finds.

    .venv/bin/python bench/bench_problems.py [--samples 500] [--seeds 0 1 2] [--workers 2] [--problems cap_set ...]

Prints three tables, writes bench/results/<date>-<machine>-problems.json and
rewrites bench/RESULTS.md's problem-benchmark section from it (`--from FILE`
re-renders it from an earlier results file without running anything):

1. Cost: one evaluation of the seed on the train split, median of repeats,
   in-process (the spec's own code) and through the sandbox (what the loop pays).
2. Baselines: the seed and every `@evolve.baseline` on the train and test splits.
3. Search: the GP default's best program after N samples, per seed, on train
   and on the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evolve import session
from evolve.spec import Spec, load_spec
from sandbox import Limits, SandboxPool
from common import gp_run, replace_results_section, time_evaluation

PROBLEMS = ("cap_set", "circle_packing", "oscillator1", "oscillator2", "bactgrow", "stressstrain", "pendulum")
RESULTS = Path(__file__).parent / "results"
PAGE_MARKER = "bench-problems"  # bench/RESULTS.md's table sits between <!-- bench-problems:start/end -->
console = Console()


def cost(spec: Spec, pool: SandboxPool, repeats: int) -> dict[str, float]:
    """Time the seed on the train split, in-process and through the sandbox."""
    return time_evaluation(spec, spec.function, "train", pool, repeats)


def baselines(spec: Spec, pool: SandboxPool) -> dict[str, dict[str, Any]]:
    """Score the seed and the baselines on train and test: {split: {name: {score, scores, metrics}}}."""
    out = {}
    for split in ("train", "test"):
        results = session.evaluate_functions(spec, spec.baseline_functions(), split, pool)
        out[split] = {r.name: r.to_json() for r in results}
    return out


def search(problem: str, samples: int, seeds: list[int], workers: int, pool: SandboxPool) -> list[dict[str, Any]]:
    """Run the GP default per seed; score each best program on the test split."""
    spec, runs = load_spec(problem), []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            best, stats, elapsed = gp_run(spec, seed, samples, workers, Path(tmp) / f"{problem}-{seed}.db", pool)
            runs.append({
                "seed": seed, "seconds": elapsed, "train_score": best["train_score"], "test_score": best["score"],
                "test_scores": best["scores"], "metrics": best["metrics"], "function": best["function"],
                "valid_share": stats.valid / max(stats.evaluated, 1),
            })
            console.print(f"{problem} seed {seed}: {elapsed:.0f}s, train {best['train_score']:.6g}, test {best['score']}")
    return runs


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as bench/RESULTS.md's tables."""
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}); "
        f"GP default: {results['samples']} samples per run, seeds {', '.join(map(str, results['seeds']))}.",
        "",
        "| problem | one evaluation, in-process ms | through the sandbox ms | baselines: train score (test score) "
        "| GP best train score per seed | its test score per seed | run s (mean) |",
        "| --- | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for problem, r in results["problems"].items():
        base = ", ".join(f"{name} {_fmt(r['baselines']['train'][name]['score'])} "
                         f"({_fmt(r['baselines']['test'][name]['score'])})" for name in r["baselines"]["train"])
        runs = r["search"]
        lines.append(
            f"| `{problem}` | {r['cost']['in_process_ms']:.0f} | {r['cost']['sandbox_ms']:.0f} | {base} | "
            + " / ".join(_fmt(x["train_score"]) for x in runs) + " | "
            + " / ".join(_fmt(x["test_score"]) for x in runs) + " | "
            + (f"{statistics.mean(x['seconds'] for x in runs):.0f}" if runs else "-") + " |"
        )
    lines += ["", "Scores are higher-is-better: cap set size, sum of radii, minus MSE (equations, pendulum); "
              "a test score is the mean over the test split's inputs."]
    return "\n".join(lines)


def update_results_page(results: dict[str, Any]) -> None:
    if not replace_results_section(PAGE_MARKER, markdown(results)):
        console.print(f"bench/RESULTS.md has no {PAGE_MARKER} markers; not updated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    if args.from_file:
        update_results_page(json.loads(args.from_file.read_text()))
        return

    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
        "samples": args.samples, "seeds": args.seeds, "problems": {},
    }
    with SandboxPool(args.workers, Limits(timeout_s=600)) as pool:
        for problem in args.problems:
            spec = load_spec(problem)
            entry = {"cost": cost(spec, pool, args.repeats), "baselines": baselines(spec, pool)}
            entry["search"] = search(problem, args.samples, args.seeds, args.workers, pool)
            results["problems"][problem] = entry

    table = Table(title=f"Problems: cost, baselines, GP default after {args.samples} samples")
    for col in ("problem", "in-process ms", "sandbox ms", "baselines train (test)", "GP train", "GP test"):
        table.add_column(col, justify="left" if col in ("problem", "baselines train (test)") else "right")
    for problem, r in results["problems"].items():
        base = "\n".join(f"{n} {_fmt(r['baselines']['train'][n]['score'])} ({_fmt(r['baselines']['test'][n]['score'])})"
                         for n in r["baselines"]["train"])
        table.add_row(problem, f"{r['cost']['in_process_ms']:.0f}", f"{r['cost']['sandbox_ms']:.0f}", base,
                      "\n".join(_fmt(x["train_score"]) for x in r["search"]),
                      "\n".join(_fmt(x["test_score"]) for x in r["search"]))
    console.print(table)

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-problems.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    update_results_page(results)
    console.print(f"wrote {out} and bench/RESULTS.md's problem-benchmark section")


if __name__ == "__main__":
    main()
