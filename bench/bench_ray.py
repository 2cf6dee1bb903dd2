"""Ray executor overhead: the same evaluations through the local pool and through Ray, on one machine.

    .venv/bin/python bench/bench_ray.py [--workers 2] [--repeats 3] [--from FILE]

Ray runs here as one node with `--workers` CPUs (no dashboard, a 200 MB
object store), so its sandbox actor gets as many workers as the local pool:
what differs is only the hop through Ray (an actor call per batch, results
back as JSON, futures resolved by the dispatcher thread). Three workloads:

1. cheap: a one-line function of one number (about 5 ms per evaluation,
   nearly all of it fork and result): the worst case for the hop;
2. expensive: best fit on bin_packing_or's test split (about 230 ms per
   evaluation): the overhead should vanish;
3. the whole loop, GP on bin_packing_or's train split (about 20 ms per
   evaluation), in samples per second.

The executor rows submit every evaluation at once and time until the last
result; the Ray executor is measured with its default batch (one evaluation
per sandbox worker) and with batches of 16. Each measurement alternates with
its local twin `--repeats` times; medians are kept (the machine is shared).
"CPU ms/eval here" is this process's CPU time (the driver, with Ray's own
threads in it; the workers are other processes). Prints a table, writes
bench/results/<date>-<machine>-ray.json and bench/RESULTS.md's `bench-ray` section
(`--from FILE` re-renders it without running).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from evolve import session
from evolve.config import RunConfig
from evolve.distributed.pool import RayPool
from evolve.executor import ExecutorConfig
from evolve.spec import load_spec
from sandbox import IsolationConfig, Limits, SandboxPool

from common import TRIVIAL_SPEC, replace_results_section

RESULTS = Path(__file__).parent / "results"
console = Console()
CHEAP_SPEC = TRIVIAL_SPEC
LIMITS = Limits(timeout_s=60.0)

PoolFactory = Callable[[], Any]


def executor_rate(make_pool: PoolFactory, program: str, entry: str, inputs: dict[str, Any], count: int) -> dict[str, float]:
    """Submit `count` evaluations at once; return evaluations/s and this process's CPU ms per evaluation."""
    with make_pool() as pool:
        assert pool.evaluate(program, entry, inputs).ok  # warm: workers forked, inputs shipped
        wall, cpu = time.perf_counter(), time.process_time()
        futures = [pool.submit(program, entry, inputs) for _ in range(count)]
        assert all(f.result().ok for f in futures)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"evals_per_s": count / wall, "cpu_ms_per_eval": 1e3 * cpu / count}


def loop_rate(executor: str, samples: int, workers: int, db: Path) -> dict[str, float]:
    """Run the GP default on bin_packing_or; return samples/s (seeding excluded) and evaluations/s."""
    config = RunConfig().replace(loop={"budget": samples, "seed": 0}, sandbox={"workers": workers}, executor={"kind": executor})
    archive, spec = session.new_run("bin_packing_or", db, config)
    with session.pool_for(config) as pool:
        evolution = session.open_evolution(archive, spec, config, pool, fresh=True)
        wall, cpu = time.perf_counter(), time.process_time()
        evolution.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    archive.close()
    stats = evolution.stats
    return {"samples_per_s": stats.samples / wall, "evals_per_s": (stats.evaluated - 1) / wall, "cpu_ms_per_sample": 1e3 * cpu / stats.samples}


def start_time(make_pool: PoolFactory) -> float:
    started = time.perf_counter()
    with make_pool():
        return time.perf_counter() - started


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def measure(workers: int, repeats: int, cheap_count: int, expensive_count: int, loop_samples: int) -> dict[str, Any]:
    isolation = IsolationConfig()
    local: PoolFactory = lambda: SandboxPool(workers, LIMITS, isolation)  # noqa: E731
    ray_default: PoolFactory = lambda: RayPool(ExecutorConfig(kind="ray"), LIMITS, isolation)  # noqa: E731
    ray_16: PoolFactory = lambda: RayPool(ExecutorConfig(kind="ray", batch_size=16), LIMITS, isolation)  # noqa: E731
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "cheap.py").write_text(CHEAP_SPEC)
        cheap = load_spec(tmp / "cheap.py")
        packing = load_spec("bin_packing_or")
        workloads = {
            "cheap": (cheap.program(cheap.function), cheap.entry, dict(cheap.inputs("train")), cheap_count),
            "expensive": (packing.program(packing.function), packing.entry, dict(packing.inputs("test")), expensive_count),
        }
        starts = {"local": [], "ray": []}
        for i in range(repeats):
            starts["local"].append(start_time(local))
            starts["ray"].append(start_time(ray_default))
            for name, (program, entry, inputs, count) in workloads.items():
                pools = {"local": local, "ray": ray_default} | ({"ray, batches of 16": ray_16} if name == "cheap" else {})
                for label, factory in pools.items():
                    rows.setdefault(name, {}).setdefault(label, []).append(executor_rate(factory, program, entry, inputs, count))
            for label in ("local", "ray"):
                rows.setdefault("loop", {}).setdefault(label, []).append(loop_rate(label, loop_samples, workers, tmp / f"{label}{i}.db"))
            console.print(f"round {i + 1}/{repeats}: " + "; ".join(
                f"{name} {label} {runs[-1].get('evals_per_s', 0):.0f}/s" for name, by in rows.items() for label, runs in by.items()
            ))
    return {
        "workers": workers, "repeats": repeats, "counts": {"cheap": cheap_count, "expensive": expensive_count, "loop": loop_samples},
        "start_s": {k: statistics.median(v) for k, v in starts.items()},
        "rows": {name: {label: median_of(runs) for label, runs in by.items()} for name, by in rows.items()},
        "runs": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as bench/RESULTS.md's Ray benchmark table."""
    r = results["ray"]
    rows, counts = r["rows"], r["counts"]
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}, Ray {results['ray_version']}); "
        f"{r['workers']} sandbox workers both ways (Ray: one node with {r['workers']} CPUs); medians of {r['repeats']} "
        f"alternating rounds; load average {results['load_before']:.1f} before the run.",
        "",
        "| workload | executor | evaluations/s | vs local | per round | CPU ms/eval here |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    names = {
        "cheap": f"cheap: one-line function, {counts['cheap']} evaluations",
        "expensive": f"expensive: best fit on bin_packing_or test, {counts['expensive']} evaluations",
        "loop": f"whole loop: GP on bin_packing_or, {counts['loop']} samples",
    }
    for name, by in rows.items():
        base = by["local"]["evals_per_s"]
        for label, row in by.items():
            cpu = row.get("cpu_ms_per_eval", row.get("cpu_ms_per_sample", 0.0))
            extra = f" ({_rate(row['samples_per_s'])} samples/s)" if "samples_per_s" in row else ""
            rounds = " / ".join(_rate(run["evals_per_s"]) for run in r["runs"][name][label])
            lines.append(f"| {names[name]} | {label} | {_rate(row['evals_per_s'])}{extra} | {row['evals_per_s'] / base:.2f} "
                         f"| {rounds} | {cpu:.2f} |")
    lines += ["", f"Starting the executor: local pool {r['start_s']['local']:.1f} s, Ray pool {r['start_s']['ray']:.1f} s "
              "(an actor per node, its sandbox workers importing numpy and scipy; Ray itself was already up)."]
    return "\n".join(lines)


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cheap", type=int, default=600, help="evaluations of the cheap program per measurement")
    parser.add_argument("--expensive", type=int, default=24, help="evaluations of the expensive program per measurement")
    parser.add_argument("--loop-samples", type=int, default=600)
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render the bench/RESULTS.md section from a results file")
    args = parser.parse_args()
    if args.from_file:
        replace_results_section("bench-ray", markdown(json.loads(args.from_file.read_text())))
        return
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]
    temp_dir = tempfile.mkdtemp(prefix="evray-", dir="/tmp")
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2,
             _temp_dir=temp_dir, logging_level=logging.WARNING)
    try:
        measured = measure(args.workers, args.repeats, args.cheap, args.expensive, args.loop_samples)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()}cpu-{platform.machine()}",
        "python": platform.python_version(), "ray_version": ray.__version__, "load_before": load_before, "ray": measured,
    }
    table = Table("workload", "executor", "evaluations/s", "vs local", "CPU ms/eval here")
    for name, by in measured["rows"].items():
        base = by["local"]["evals_per_s"]
        for label, row in by.items():
            cpu = row.get("cpu_ms_per_eval", row.get("cpu_ms_per_sample", 0.0))
            table.add_row(name, label, f"{row['evals_per_s']:.1f}", f"{row['evals_per_s'] / base:.2f}", f"{cpu:.2f}")
    console.print(table)
    console.print(f"start: local {measured['start_s']['local']:.2f} s, ray {measured['start_s']['ray']:.2f} s")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{results['machine']}-ray.json"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    console.print(f"wrote {out}")
    if not replace_results_section("bench-ray", markdown(results)):
        console.print("bench/RESULTS.md has no bench-ray markers: section not updated", style="yellow")


if __name__ == "__main__":
    sys.exit(main())
