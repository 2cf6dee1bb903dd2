"""Benchmark of the ibp_seeding problem: build cost, evaluation cost, equations per rule, the GP default.

    .venv/bin/python bench/bench_ibp.py [--samples 200] [--seeds 0 1 2] [--workers 2]

Prints a table, writes bench/results/<date>-<machine>-ibp.json and rewrites
the README's `bench-ibp` section from it (`--from FILE` re-renders the
README from an earlier results file without running anything):

1. Build: deriving the templates (sympy), zero sectors and masters, and the
   problem inputs, per family, from cold caches.
2. Cost: one evaluation of the seed (the whole candidate pool, the worst
   case) on the train split, in-process and through the sandbox.
3. Equations: the seed, every baseline and the full standard seeding per input.
4. Search: the GP default's best rule after N samples per seed, its
   equations on train and test, and the run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evolve import session
from evolve.problems.ibp import family, seeding
from evolve.problems.ibp.families import FAMILIES
from evolve.problems.ibp.problems import SPLITS, problem_input
from evolve.spec import load_spec
from sandbox import Limits, SandboxPool
from common import gp_run, replace_readme_section, time_evaluation

RESULTS = Path(__file__).parent / "results"
README_MARKER = "bench-ibp"
console = Console()


def build_seconds() -> dict[str, float]:
    """Time templates + zero sectors + masters per family, then every named input, from cold caches."""
    for fn in (family.derive_templates, seeding.zero_sectors, seeding.masters, seeding._build):
        fn.cache_clear()
    out = {}
    for name, fam in FAMILIES.items():
        start = time.perf_counter()
        seeding.masters(fam)
        out[f"family {name}"] = time.perf_counter() - start
    for name in (*SPLITS["train"], *SPLITS["test"]):
        start = time.perf_counter()
        problem_input(name)
        out[f"input {name}"] = time.perf_counter() - start
    return out


def equations(pool: SandboxPool) -> dict[str, dict[str, Any]]:
    """Return {input: {rule: equations}} for the seed, the baselines and the full standard seeding."""
    spec, out = load_spec("ibp_seeding"), {}
    for split in ("train", "test"):
        for result in session.evaluate_functions(spec, spec.baseline_functions(), split, pool):
            for name, used in result.metrics["equations"].items():
                out.setdefault(name, {})[result.name] = used
                out[name]["full standard seeding"] = result.metrics["standard_seeding"][name]
    return out


def search(samples: int, seeds: list[int], workers: int, pool: SandboxPool) -> list[dict[str, Any]]:
    spec, runs = load_spec("ibp_seeding"), []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            best, stats, elapsed = gp_run(spec, seed, samples, workers, Path(tmp) / f"ibp-{seed}.db", pool)
            runs.append({"seed": seed, "seconds": elapsed, "train_score": best["train_score"],
                         "test_equations": best["metrics"]["equations"], "function": best["function"],
                         "valid_share": stats.valid / max(stats.evaluated, 1)})
            console.print(f"seed {seed}: {elapsed:.0f}s, train {best['train_score']:.6g}, test {best['metrics']['equations']}")
    return runs


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as the README's tables."""
    eq = results["equations"]
    rules = list(next(iter(eq.values())))
    lines = [f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), "
             f"{results['workers']} sandbox workers.", "",
             "| input | " + " | ".join(rules) + " | " + " | ".join(f"GP seed {r['seed']}" for r in results["search"]) + " |",
             "| --- |" + " ---: |" * (len(rules) + len(results["search"]))]
    for name, row in eq.items():
        gp = [(-r["train_score"] if name in SPLITS["train"] else r["test_equations"].get(name, "-")) for r in results["search"]]
        cells = [row[k] for k in rules] + gp
        lines.append(f"| {name} | " + " | ".join(f"{c:g}" if isinstance(c, int | float) else str(c) for c in cells) + " |")
    cost = results["cost"]
    lines += ["", f"One evaluation of the seed on train (its whole pool, the worst case): {cost['in_process_ms']:.0f} ms "
              f"in-process, {cost['sandbox_ms']:.0f} ms through the sandbox. GP runs of {results['samples']} samples: "
              + ", ".join(f"{r['seconds']:.0f} s" for r in results["search"]) + ". Build from cold caches: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in results["build_s"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render the README from this results file")
    args = parser.parse_args()
    if args.from_file:
        results = json.loads(args.from_file.read_text())
    else:
        machine = f"{os.cpu_count()}cpu-{platform.machine()}"
        results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
                   "samples": args.samples, "workers": args.workers, "build_s": build_seconds()}
        with SandboxPool(args.workers, Limits(timeout_s=600)) as pool:
            spec = load_spec("ibp_seeding")
            results["cost"] = time_evaluation(spec, spec.function, "train", pool, args.repeats)
            results["equations"] = equations(pool)
            results["search"] = search(args.samples, args.seeds, args.workers, pool)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-ibp.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"wrote {out}")
    table = Table(title="ibp_seeding: equations per rule")
    for line in markdown(results).splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not table.columns:
                for c in cells:
                    table.add_column(c)
            else:
                table.add_row(*cells)
    console.print(table)
    console.print(markdown(results).splitlines()[-1])
    if not replace_readme_section(README_MARKER, markdown(results)):
        console.print(f"README has no {README_MARKER} markers; not updated")


if __name__ == "__main__":
    main()
