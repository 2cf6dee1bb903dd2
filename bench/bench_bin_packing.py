"""Bin-packing benchmark: simulator cost, and what the GP default finds.

    .venv/bin/python bench/bench_bin_packing.py [--samples 2000] [--seeds 0 1 2] [--workers 2]

Prints two tables, writes bench/results/<date>-<machine>-bin_packing.json and
rewrites bench/RESULTS.md's benchmark section from it (`--from FILE` re-renders
bench/RESULTS.md from an earlier results file without running anything):

1. Simulator cost: one evaluation of best fit on each train and test split,
   median of repeats, measured in-process (the trusted simulator alone) and
   through the sandbox (fork, limits, JSON result: what the loop pays).
2. Search: the GP default's best program after N samples on bin_packing_or,
   per seed, as excess over the L1 bound on OR1-OR4, next to best fit.
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

from rich.console import Console
from rich.table import Table

from evolve import session
from evolve.spec import load_spec
from sandbox import Limits, SandboxPool
from common import gp_run, replace_results_section, time_evaluation

PROBLEMS = ("bin_packing_or", "bin_packing_weibull")
RESULTS = Path(__file__).parent / "results"
console = Console()


def simulator_cost(repeats: int) -> list[dict]:
    """Time best fit on every split of both problems, in-process and sandboxed."""
    rows = []
    with SandboxPool(1, Limits(timeout_s=600)) as pool:
        for problem in PROBLEMS:
            spec = load_spec(problem)
            best_fit = spec.baseline_functions()["best_fit"]
            for split in ("train", "test"):
                inputs = spec.inputs(split)
                items = sum(i["num_items"] for d in inputs.values() for i in d.values())
                rows.append({
                    "problem": problem, "split": split, "inputs": len(inputs), "items": items,
                    **time_evaluation(spec, best_fit, split, pool, repeats),
                })
    return rows


def search(samples: int, seeds: list[int], workers: int) -> dict:
    """Run the GP default per seed; score each best program on OR1-OR4."""
    spec = load_spec("bin_packing_or")
    runs = []
    with tempfile.TemporaryDirectory() as tmp, SandboxPool(workers, Limits(timeout_s=600)) as test_pool:
        for seed in seeds:
            best, stats, elapsed = gp_run(spec, seed, samples, workers, Path(tmp) / f"seed{seed}.db", test_pool)
            runs.append({
                "seed": seed, "seconds": elapsed, "train_score": best["train_score"],
                "valid_share": stats.valid / max(stats.evaluated, 1),
                "excess_percent": best["metrics"]["excess_percent"], "function": best["function"],
            })
            console.print(f"seed {seed}: {elapsed:.0f}s, train {best['train_score']:.4f}")
        [bf] = session.evaluate_functions(spec, {"best_fit": spec.baseline_functions()["best_fit"]}, "test", test_pool)
    return {"samples": samples, "runs": runs, "best_fit": bf.metrics["excess_percent"]}


def markdown(results: dict) -> str:
    """Render a results file as bench/RESULTS.md's benchmark tables."""
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}).",
        "",
        "Simulator cost: one evaluation of best fit on a whole split, median of repeats:",
        "",
        "| problem | split | inputs | items | in-process ms | through the sandbox ms |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results["simulator_cost"]:
        lines.append(f"| `{r['problem']}` | {r['split']} | {r['inputs']} | {r['items']} | "
                     f"{r['in_process_ms']:.1f} | {r['sandbox_ms']:.1f} |")
    found = results["search"]
    names = list(found["best_fit"])
    lines += [
        "",
        f"GP default on `bin_packing_or` after {found['samples']} samples (excess over the L1 bound, %, test sets):",
        "",
        "| | " + " | ".join(names) + " | mean | run s |",
        "| --- |" + " ---: |" * (len(names) + 2),
    ]
    for run in found["runs"]:
        ex = run["excess_percent"]
        lines.append(f"| GP, seed {run['seed']} | " + " | ".join(f"{ex[n]:.2f}" for n in names)
                     + f" | {statistics.mean(ex.values()):.2f} | {run['seconds']:.0f} |")
    bf = found["best_fit"]
    lines.append("| best fit | " + " | ".join(f"{bf[n]:.2f}" for n in names) + f" | {statistics.mean(bf.values()):.2f} | |")
    return "\n".join(lines)


def update_results_page(results: dict) -> None:
    replace_results_section("bench", markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    if args.from_file:
        update_results_page(json.loads(args.from_file.read_text()))
        return

    cost = simulator_cost(args.repeats)
    table = Table(title=f"Simulator cost: best fit, median of {args.repeats}")
    for col in ("problem", "split", "inputs", "items", "in-process ms", "sandbox ms"):
        table.add_column(col, justify="right" if col not in ("problem", "split") else "left")
    for r in cost:
        table.add_row(r["problem"], r["split"], str(r["inputs"]), str(r["items"]),
                      f"{r['in_process_ms']:.1f}", f"{r['sandbox_ms']:.1f}")
    console.print(table)

    found = search(args.samples, args.seeds, args.workers)
    names = list(found["best_fit"])
    table = Table(title=f"GP default on bin_packing_or after {args.samples} samples: excess over L1 bound, %")
    for col in ["", *names, "mean", "run s"]:
        table.add_column(col, justify="right")
    for run in found["runs"]:
        ex = run["excess_percent"]
        table.add_row(f"GP seed {run['seed']}", *(f"{ex[n]:.2f}" for n in names),
                      f"{statistics.mean(ex.values()):.2f}", f"{run['seconds']:.0f}")
    bf = found["best_fit"]
    table.add_row("best fit", *(f"{bf[n]:.2f}" for n in names), f"{statistics.mean(bf.values()):.2f}", "")
    console.print(table)

    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-bin_packing.json"
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
        "simulator_cost": cost, "search": found,
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    update_results_page(results)
    console.print(f"wrote {out} and bench/RESULTS.md's benchmark section")


if __name__ == "__main__":
    main()
