"""Benchmark of the ibp_seeding problem: build cost, evaluation cost, equations per rule, the GP default.

    .venv/bin/python bench/bench_ibp.py [--samples 200] [--seeds 0 1 2] [--workers 2]
    .venv/bin/python bench/bench_ibp.py --trianglebox [--gp-time 1h] [--seeds 0 1 2] [--archives A.db ...]

Prints a table, writes bench/results/<date>-<machine>-ibp.json and rewrites
the `bench-ibp` section of bench/RESULTS.md from it (`--from FILE` re-renders
from an earlier results file without running anything):

1. Build: deriving the templates (sympy), zero sectors and masters, and the
   problem inputs, per family, from cold caches.
2. Cost: one evaluation of the seed (the whole candidate pool, the worst
   case) on the train split, in-process and through the sandbox.
3. Equations: the seed, every baseline and the full standard seeding per input.
4. Search: the GP default's best rule after N samples per seed, its
   equations on train and test, and the run's wall time.

`--trianglebox` measures `ibp_trianglebox` instead (results file
`...-ibp-trianglebox.json`, section `ibp-trianglebox` and the README's
one-line `ibp-trianglebox-summary`): the trusted scorer's wall time on the
standard seeding, a failing and a passing order (medians, one thread); then
seeds, equations and whether the target reduces for the baselines, the
smallest certified list and the GP default's best rule per seed (a fresh run
of `--gp-time` each, or the archives of earlier `evolve run ibp_trianglebox`
runs), with the samples and wall time at which the run first reached it.
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
from evolve.archive import Archive
from evolve.problems.ibp import family, seeding
from evolve.problems.ibp.families import FAMILIES
from evolve.problems.ibp.problems import SPLITS, TRIANGLEBOX_SPLITS, problem_input, smallest_certified
from evolve.problems.ibp.seeding import pool_system
from evolve.spec import load_spec
from sandbox import Limits, SandboxPool
from common import gp_run, replace_readme_section, time_evaluation

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
README_MARKER = "bench-ibp"
TRIANGLEBOX_MARKER = "ibp-trianglebox"
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


def tb_orders(spec: Any, functions: dict[str, str], split: str, pool: SandboxPool) -> dict[str, list[int]]:
    """Each function's seed order on the split's one input, computed in the sandbox (GP's rules are untrusted)."""
    [name] = TRIANGLEBOX_SPLITS[split]
    orders = {}
    for label, function in functions.items():
        evaluation = pool.evaluate(spec.program(function), spec.entry, spec.inputs(split))
        assert evaluation.ok, f"{label}: {evaluation.error}"
        orders[label] = list(evaluation.outputs[name])
    return orders


def tb_prefix(split: str, order: list[int]) -> dict[str, Any]:
    """What the trusted scorer does with an order: seeds and equations in, whether the target reduced, seconds."""
    [name] = TRIANGLEBOX_SPLITS[split]
    problem = problem_input(name)
    start = time.perf_counter()
    found = pool_system(problem).prefix(order, problem["targets"], cap=problem["cap_equations"],
                                        budget=problem["work_budget"])
    return {"seeds": found.seeds, "equations": found.equations, "reduces": found.unreduced == 0,
            "seconds": time.perf_counter() - start}


def tb_first(order: list[int], first: list[int]) -> list[int]:
    """`first`, then the rest of `order`: a seed list given as a whole order of the pool."""
    chosen = set(first)
    return list(first) + [i for i in order if i not in chosen]


def tb_run(db: Path, spec: Any, pool: SandboxPool) -> dict[str, Any]:
    """The best rule of a GP run's archive, when the run first reached its score, and its seeds on train and test."""
    archive = Archive.open(db, readonly=True)
    try:
        [best] = archive.top(1)
        first, last = archive.program(1), archive.program(archive.last_program_id())
        run = {"seed": archive.run_info().get("config", {}).get("loop", {}).get("seed"), "function": best.function,
               "samples_total": archive.next_sample(), "evaluated": archive.counts().programs,
               "wall_s": (last.created or 0) - (first.created or 0), "samples_to_best": best.sample + 1,
               "seconds_to_best": (best.created or 0) - (first.created or 0)}
    finally:
        archive.close()
    for split in ("train", "test"):
        run[split] = tb_prefix(split, tb_orders(spec, {"gp": best.function}, split, pool)["gp"])
    return run


def trianglebox(args: argparse.Namespace, pool: SandboxPool) -> dict[str, Any]:
    """Measure ibp_trianglebox: the scorer's cost, then seeds per rule (baselines, certified list, GP runs)."""
    spec = load_spec("ibp_trianglebox")
    baselines = spec.baseline_functions()
    rules: dict[str, dict[str, Any]] = {}
    for split in ("train", "test"):
        [name] = TRIANGLEBOX_SPLITS[split]
        problem = problem_input(name)
        orders = tb_orders(spec, baselines, split, pool)
        orders["smallest certified"] = tb_first(orders["laporta"], smallest_certified(problem))
        for label, order in orders.items():
            rules.setdefault(label, {})[split] = tb_prefix(split, order)
    # The cost, on train, warm (the kernel's JIT and the pool system built): medians of one thread's wall time.
    problem = problem_input(TRIANGLEBOX_SPLITS["train"][0])
    orders = tb_orders(spec, baselines, "train", pool)
    orders["smallest certified"] = tb_first(orders["laporta"], smallest_certified(problem))
    cost = {label: 1e3 * statistics.median(tb_prefix("train", orders[label])["seconds"] for _ in range(args.repeats))
            for label in ("laporta", "usovitsch", "smallest certified")}
    cost["candidate_ms"] = time_evaluation(spec, spec.function, "train", pool, args.repeats)["in_process_ms"]
    runs = []
    if args.archives:
        runs = [tb_run(db, spec, pool) for db in args.archives]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in args.seeds:
                db = Path(tmp) / f"trianglebox-{seed}.db"
                gp_run(spec, seed, 10**6, args.workers, db, pool, time_limit_s=session.parse_duration(args.gp_time))
                runs.append(tb_run(db, spec, pool))
                console.print(f"seed {seed}: {runs[-1]['train']['seeds']} seeds after {runs[-1]['samples_to_best']} samples")
    return {"rules": rules, "cost_ms": cost, "search": runs,
            "standard": {"seeds": problem["standard_seeds"], "equations": problem["standard_equations"]}}


def tb_markdown(results: dict[str, Any]) -> str:
    """Render a triangle-box results file as the results page's table and notes."""
    def cell(r: dict[str, Any]) -> str:
        return f"{r['seeds']:,} / {r['equations']:,}" + ("" if r["reduces"] else " (not reduced)")

    lines = [f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), "
             f"{results['workers']} sandbox workers, load average {results['load']}.", "",
             "| rule | train: seeds / equations | test: seeds / equations | samples to it | wall time to it |",
             "| --- | ---: | ---: | ---: | ---: |",
             f"| full standard seeding | {results['standard']['seeds']:,} / {results['standard']['equations']:,} | | | |"]
    for label, row in results["rules"].items():
        lines.append(f"| `{label}` | {cell(row['train'])} | {cell(row['test'])} | | |")
    for run in results["search"]:
        lines.append(f"| GP seed {run['seed']} | {cell(run['train'])} | {cell(run['test'])} | "
                     f"{run['samples_to_best']:,} of {run['samples_total']:,} | "
                     f"{run['seconds_to_best'] / 60:.0f} of {run['wall_s'] / 60:.0f} min |")
    cost = results["cost_ms"]
    lines += ["", f"The trusted scorer, one thread, warm (medians of {results['repeats']}): the standard seeding "
              f"(`laporta`) {cost['laporta'] / 1e3:.2f} s, a failing order (`usovitsch`: stops at the cap) "
              f"{cost['usovitsch'] / 1e3:.2f} s, the certified list {cost['smallest certified'] / 1e3:.3f} s; the "
              f"candidate's side (the seed's priority over the whole pool, in-process) {cost['candidate_ms']:.0f} ms.",
              "", "GP's best rules:", ""]
    for run in results["search"]:
        body = run["function"].strip().splitlines()[-1].strip()
        lines.append(f"- seed {run['seed']}: `{body}`")
    return "\n".join(lines)


def tb_summary(results: dict[str, Any]) -> str:
    """The README's one sentence about the triangle-box, from the same results file."""
    rules, runs = results["rules"], results["search"]
    best = min(runs, key=lambda r: (not r["train"]["reduces"], r["train"]["seeds"])) if runs else None
    minutes = " and ".join(f"{r['wall_s'] / 60:.0f}" for r in runs)
    gp = (f"the GP default's best rule in {len(runs)} run{'s' if len(runs) > 1 else ''} ({minutes} min on 2 cores) uses {best['train']['seeds']} seeds ({best['test']['seeds']} at the test point)"
          if best else "no GP run recorded")
    return (f"On the paper's triangle-box (IBP relations only, no Lorentz or symmetry identities; {results['machine']}, "
            f"{results['date'][:10]}), the standard seeding ({results['standard']['equations']:,} equations) is scored in "
            f"{results['cost_ms']['laporta'] / 1e3:.2f} s; the paper's 92-seed rule (as transcribed) "
            f"{'reduces' if rules['usovitsch']['train']['reduces'] else 'does not reduce'} the target, evoloop's smallest "
            f"certified list has {rules['smallest certified']['train']['seeds']} seeds, and {gp} "
            "([table](bench/RESULTS.md#ibp-triangle-box)).")


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
    parser.add_argument("--trianglebox", action="store_true", help="measure ibp_trianglebox instead of ibp_seeding")
    parser.add_argument("--gp-time", default="1h", help="wall time of each triangle-box GP run")
    parser.add_argument("--archives", type=Path, nargs="+", help="report these triangle-box GP runs instead of running")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render the tables from this results file")
    args = parser.parse_args()
    suffix = "ibp-trianglebox" if args.trianglebox else "ibp"
    if args.from_file:
        results = json.loads(args.from_file.read_text())
    else:
        machine = f"{os.cpu_count()}cpu-{platform.machine()}"
        results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
                   "samples": args.samples, "workers": args.workers, "repeats": args.repeats,
                   "load": " / ".join(f"{x:.1f}" for x in os.getloadavg())}
        with SandboxPool(args.workers, Limits(timeout_s=600)) as pool:
            if args.trianglebox:
                results |= trianglebox(args, pool)
            else:
                results["build_s"] = build_seconds()
                spec = load_spec("ibp_seeding")
                results["cost"] = time_evaluation(spec, spec.function, "train", pool, args.repeats)
                results["equations"] = equations(pool)
                results["search"] = search(args.samples, args.seeds, args.workers, pool)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-{suffix}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"wrote {out}")
    text = tb_markdown(results) if args.trianglebox else markdown(results)
    table = Table(title=f"{suffix}: {'seeds' if args.trianglebox else 'equations'} per rule")
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not table.columns:
                for c in cells:
                    table.add_column(c)
            else:
                table.add_row(*cells)
    console.print(table)
    console.print("\n".join(line for line in text.splitlines()[len(table.rows) + 4:]))
    marker = TRIANGLEBOX_MARKER if args.trianglebox else README_MARKER
    if not replace_readme_section(marker, text):
        console.print(f"bench/RESULTS.md has no {marker} markers; not updated")
    if args.trianglebox and not replace_readme_section("ibp-trianglebox-summary", tb_summary(results), page=README):
        console.print("README.md has no ibp-trianglebox-summary markers; not updated")


if __name__ == "__main__":
    main()
