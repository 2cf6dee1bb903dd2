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
seeds, equations and whether the target reduces for the seed, the
baselines, the smallest certified list and the GP default's best rule per
seed (a fresh run of `--gp-time` each, or the archives of earlier
`evolve run ibp_trianglebox` runs), with the samples and wall time at which
the run first reached it, on each input: train and the test point (IBP and
Lorentz-invariance equations) and the train point with IBP alone.
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
from evolve.problems.ibp.problems import SPLITS, problem_input, smallest_certified
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


# The triangle-box's inputs, as the table's columns: train, the test point, and train with IBP relations alone.
TB_INPUTS = {"trianglebox": "train", "trianglebox_point2": "test point", "trianglebox_ibp_only": "IBP only"}


def tb_orders(spec: Any, functions: dict[str, str], pool: SandboxPool) -> dict[str, dict[str, list[int]]]:
    """Each function's seed order per input ({label: {input: order}}), computed in the sandbox (GP's rules are untrusted)."""
    orders: dict[str, dict[str, list[int]]] = {label: {} for label in functions}
    for split in ("train", "test"):
        for label, function in functions.items():
            evaluation = pool.evaluate(spec.program(function), spec.entry, spec.inputs(split))
            assert evaluation.ok, f"{label}: {evaluation.error}"
            orders[label].update({name: list(out) for name, out in evaluation.outputs.items()})
    return orders


def tb_prefix(name: str, order: list[int]) -> dict[str, Any]:
    """What the trusted scorer does with an order: seeds and equations in, whether the target reduced, seconds."""
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
    """The best rule of a GP run's archive, when the run first reached its score, and its seeds per input."""
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
    orders = tb_orders(spec, {"gp": best.function}, pool)["gp"]
    run["inputs"] = {name: tb_prefix(name, order) for name, order in orders.items()}
    return run


def trianglebox(args: argparse.Namespace, pool: SandboxPool) -> dict[str, Any]:
    """Measure ibp_trianglebox: the scorer's cost, then seeds per rule (baselines, certified list, GP runs)."""
    spec = load_spec("ibp_trianglebox")
    orders = tb_orders(spec, {"seed": spec.function, **spec.baseline_functions()}, pool)
    orders["smallest certified"] = {name: tb_first(orders["laporta"][name], smallest_certified(problem_input(name)))
                                    for name in TB_INPUTS}
    rules = {label: {name: tb_prefix(name, order[name]) for name in TB_INPUTS} for label, order in orders.items()}
    # The cost, warm (the kernel's JIT and the pool systems built): medians of one thread's wall time. The
    # failing order is the seed's (the pool in Laporta's order, cut at the cap).
    cost = {name: {label: 1e3 * statistics.median(tb_prefix(name, orders[label][name])["seconds"]
                                                   for _ in range(args.repeats))
                   for label in ("laporta", "seed", "smallest certified")}
            for name in ("trianglebox", "trianglebox_ibp_only")}
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
                console.print(f"seed {seed}: {runs[-1]['inputs']['trianglebox']['seeds']} seeds after "
                              f"{runs[-1]['samples_to_best']} samples")
    standard = {name: {"seeds": problem_input(name)["standard_seeds"],
                       "equations": problem_input(name)["standard_equations"]} for name in TB_INPUTS}
    return {"rules": rules, "cost_ms": cost, "search": runs, "standard": standard}


def tb_cell(r: dict[str, Any]) -> str:
    return f"{r['seeds']:,} / {r['equations']:,}" + ("" if r["reduces"] else " (not reduced)")


def tb_markdown(results: dict[str, Any]) -> str:
    """Render a triangle-box results file as the results page's table and notes."""
    names = list(TB_INPUTS)
    lines = [f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), "
             f"{results['workers']} sandbox workers, load average {results['load']}.", "",
             "Seeds / equations per input (train and the test point: IBP and Lorentz-invariance equations; "
             "IBP only: the train point without the Lorentz identity):", "",
             "| rule | " + " | ".join(TB_INPUTS.values()) + " | samples to it | wall time to it |",
             "| --- |" + " ---: |" * (len(names) + 2),
             "| full standard seeding | " + " | ".join(tb_cell(dict(results["standard"][n], reduces=True))
                                              for n in names) + " | | |"]
    for label, row in results["rules"].items():
        lines.append(f"| `{label}` | " + " | ".join(tb_cell(row[n]) for n in names) + " | | |")
    for run in results["search"]:
        lines.append(f"| GP seed {run['seed']} | " + " | ".join(tb_cell(run["inputs"][n]) for n in names)
                     + f" | {run['samples_to_best']:,} of {run['samples_total']:,} | "
                     f"{run['seconds_to_best'] / 60:.0f} of {run['wall_s'] / 60:.0f} min |")
    cost = results["cost_ms"]
    lines += ["", f"The trusted scorer, one thread, warm (medians of {results['repeats']}), with the Lorentz identity "
              "(IBP only): " + ", ".join(
                  f"{what} {cost['trianglebox'][label] / 1e3:.2f} s ({cost['trianglebox_ibp_only'][label] / 1e3:.2f} s)"
                  for label, what in (("laporta", "the standard seeding (`laporta`)"),
                                      ("seed", "a failing order (the seed's: stops at the cap)"),
                                      ("smallest certified", "the certified list")))
              + f"; the candidate's side (the seed's priority over the whole pool, in-process) "
              f"{cost['candidate_ms']:.0f} ms.", "", "GP's best rules:", ""]
    for run in results["search"]:
        body = run["function"].strip().splitlines()[-1].strip()
        lines.append(f"- seed {run['seed']}: `{body}`")
    return "\n".join(lines)


def tb_summary(results: dict[str, Any]) -> str:
    """The README's one sentence about the triangle-box, from the same results file."""
    rules, runs = results["rules"], results["search"]
    train = "trianglebox"

    def reduces(rule: dict[str, Any], name: str) -> str:
        return "reduces" if rule[name]["reduces"] else "does not reduce"

    best = min(runs, key=lambda r: (not r["inputs"][train]["reduces"], r["inputs"][train]["seeds"])) if runs else None
    minutes = ", ".join(f"{r['wall_s'] / 60:.0f}" for r in runs)
    gp = (f"the GP default's best rule in {len(runs)} run{'s' if len(runs) > 1 else ''} ({minutes} min on 2 cores) "
          f"uses {best['inputs'][train]['seeds']} seeds ({best['inputs']['trianglebox_point2']['seeds']} at the test "
          f"point; fewest per run: {', '.join(str(r['inputs'][train]['seeds']) for r in runs)})"
          if best else "no GP run recorded")
    return (f"On the paper's triangle-box with IBP and Lorentz-invariance equations (no symmetries; "
            f"{results['machine']}, {results['date'][:10]}), the standard seeding "
            f"({results['standard'][train]['equations']:,} equations) is scored in "
            f"{results['cost_ms'][train]['laporta'] / 1e3:.2f} s; the paper's 92-seed rule (as transcribed) "
            f"{reduces(rules['usovitsch'], train)} the target ({reduces(rules['usovitsch'], 'trianglebox_ibp_only')} "
            f"with IBP alone), evoloop's smallest certified list has {rules['smallest certified'][train]['seeds']} "
            f"seeds, and {gp} ([table](bench/RESULTS.md#ibp-triangle-box)).")


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
    lines = text.splitlines()
    last_row = max(i for i, line in enumerate(lines) if line.startswith("| "))
    console.print("\n".join(lines[last_row + 1:]))
    marker = TRIANGLEBOX_MARKER if args.trianglebox else README_MARKER
    if not replace_readme_section(marker, text):
        console.print(f"bench/RESULTS.md has no {marker} markers; not updated")
    if args.trianglebox and not replace_readme_section("ibp-trianglebox-summary", tb_summary(results), page=README):
        console.print("README.md has no ibp-trianglebox-summary markers; not updated")


if __name__ == "__main__":
    main()
