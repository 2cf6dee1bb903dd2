"""Sandbox overhead: evoloop's sandbox (all layers) next to a fresh interpreter and multiprocessing.

    .venv/bin/python bench/bench_sandbox.py [--repeats 300] [--throughput 2000]

Side by side, in one run, for a trivial program (`evaluate(x) = x`):

1. median latency of one evaluation, from request to checked result:
   (a) a fresh `python -c` per program that imports numpy (what a naive
       sandbox costs), (b) `multiprocessing.Pool(maxtasksperchild=1)` with
       numpy imported in the parent (a fresh forked process per task, no
       isolation), (c) evoloop's SandboxPool with every layer this machine
       allows (the layers are named in the table);
2. evaluations per second through SandboxPool with 1 and 2 workers, and
   the CPU time each evaluation costs in all processes (the speed-up two
   workers can reach is bounded by the cores that other work leaves free;
   the CPU figure is not).

Prints the tables, writes bench/results/<date>-<machine>-sandbox.json and
rewrites bench/RESULTS.md's sandbox benchmark section (`--from FILE` re-renders
it from an earlier results file).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import numpy  # noqa: F401  # (b) forks from a parent that has numpy loaded, as the loop has

from sandbox import Limits, SandboxPool
from common import replace_results_section

RESULTS = Path(__file__).parent / "results"
PROGRAM = "def evaluate(x):\n    return x\n"
INPUTS = {"x": 1.0}


def _exec_program(program: str, x: float) -> float:
    """(b)'s task: run the program in the forked pool process."""
    namespace: dict[str, Any] = {}
    exec(compile(program, "<candidate>", "exec"), namespace)  # trusted: the benchmark's own trivial program
    return float(namespace["evaluate"](x))


def fresh_interpreter(repeats: int) -> list[float]:
    """(a): one `python -c` per program, numpy imported."""
    code = f"import numpy\n{PROGRAM}\nprint(float(evaluate(1.0)))"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - start)
        assert float(out) == 1.0
    return times


def multiprocessing_pool(repeats: int) -> list[float]:
    """(b): multiprocessing with a fresh forked process per task."""
    times = []
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        pool.apply(_exec_program, (PROGRAM, 1.0))  # warm: the first worker is started with the pool
        for _ in range(repeats):
            start = time.perf_counter()
            assert pool.apply(_exec_program, (PROGRAM, 1.0)) == 1.0
            times.append(time.perf_counter() - start)
    return times


def sandbox_latency(repeats: int) -> tuple[list[float], str]:
    """(c): evoloop's sandbox, one worker, all layers."""
    times = []
    with SandboxPool(1, Limits(timeout_s=10.0)) as pool:
        for _ in range(20):  # warm: inputs shipped, caches filled
            pool.evaluate(PROGRAM, "evaluate", INPUTS)
        for _ in range(repeats):
            start = time.perf_counter()
            evaluation = pool.evaluate(PROGRAM, "evaluate", INPUTS)
            times.append(time.perf_counter() - start)
            assert evaluation.scores == INPUTS, evaluation
        return times, pool.layers.describe()


def _cpu_s() -> float:
    """CPU seconds of this process and of its reaped descendants (workers and their candidates)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every process, all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _pool_cpu_s(workers: int, count: int) -> tuple[float, float, float]:
    """Run `count` trivial programs on a fresh pool.

    Returns the batch's wall seconds, the CPU seconds of this process tree
    in all, and the machine's busy CPU seconds during the batch.
    """
    cpu = _cpu_s()
    with SandboxPool(workers, Limits(timeout_s=10.0)) as pool:
        wait([pool.submit(PROGRAM, "evaluate", INPUTS) for _ in range(20 * workers)])
        busy, start = _machine_busy_s(), time.perf_counter()
        futures = [pool.submit(PROGRAM, "evaluate", INPUTS) for _ in range(count)]
        wait(futures)
        elapsed, busy = time.perf_counter() - start, _machine_busy_s() - busy
        assert all(f.result().ok for f in futures)
    return elapsed, _cpu_s() - cpu, busy  # our CPU is counted once the pool is closed and its processes reaped


def throughput(workers: int, count: int) -> dict[str, float]:
    """Evaluations per second with `workers` workers, CPU ms per evaluation, and who kept the cores busy.

    The CPU figure subtracts a pool that runs only its warm-up (worker start,
    imports), so it is what one more evaluation costs, whatever else the
    machine runs; 1000 / it is the rate a core could sustain. `others_cores`
    is how many cores other work kept busy meanwhile (the machine is shared).
    """
    elapsed, cpu, busy = _pool_cpu_s(workers, count)
    _, cpu_idle, _ = _pool_cpu_s(workers, 0)
    ours = cpu - cpu_idle
    return {"rate": count / elapsed, "cpu_ms": 1e3 * ours / count, "our_cores": ours / elapsed,
            "others_cores": max(0.0, busy - ours) / elapsed}


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as bench/RESULTS.md's sandbox benchmark tables."""
    lat, tp, cpu, cores = (results[k] for k in ("latency_ms", "throughput", "cpu_ms_per_evaluation", "cores_busy"))
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), load average "
        f"{results['load_average'][0]:.1f} from other work; layers: {results['layers']}.",
        "",
        "| trivial program, one evaluation | median ms | vs (c) |",
        "| --- | ---: | ---: |",
    ]
    names = {"python_c": "(a) fresh `python -c`, numpy imported", "multiprocessing": "(b) multiprocessing, maxtasksperchild=1",
             "sandbox": "(c) evoloop sandbox, all layers"}
    for key, name in names.items():
        lines.append(f"| {name} | {lat[key]:.2f} | {lat[key] / lat['sandbox']:.1f}x |")
    lines += [
        "",
        "| sandbox workers | evaluations/s | speed-up | CPU ms per evaluation (loop + worker + child) "
        "| cores busy: this run / other work |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in ("1", "2"):
        lines.append(f"| {w} | {tp[w]:.0f} | {tp[w] / tp['1']:.2f} | {cpu[w]:.2f} | "
                     f"{cores[w]['ours']:.2f} / {cores[w]['others']:.2f} |")
    return "\n".join(lines)


def update_results_page(results: dict) -> None:
    replace_results_section("bench-sandbox", markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="evaluations timed for (b) and (c)")
    parser.add_argument("--fresh-repeats", type=int, default=30, help="evaluations timed for (a), the slow one")
    parser.add_argument("--throughput", type=int, default=2000, help="evaluations queued per throughput figure")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    from rich.console import Console

    console = Console()
    if args.from_file:
        update_results_page(json.loads(args.from_file.read_text()))
        return
    sandbox_times, layers = sandbox_latency(args.repeats)
    latency = {
        "python_c": 1e3 * statistics.median(fresh_interpreter(args.fresh_repeats)),
        "multiprocessing": 1e3 * statistics.median(multiprocessing_pool(args.repeats)),
        "sandbox": 1e3 * statistics.median(sandbox_times),
    }
    measured = {str(w): throughput(w, args.throughput) for w in (1, 2)}
    rates = {w: m["rate"] for w, m in measured.items()}
    cpu_ms = {w: m["cpu_ms"] for w, m in measured.items()}
    cores = {w: {"ours": m["our_cores"], "others": m["others_cores"]} for w, m in measured.items()}
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
        "layers": layers, "latency_ms": latency, "throughput": rates, "cpu_ms_per_evaluation": cpu_ms, "cores_busy": cores,
        "load_average": os.getloadavg(),
        "sandbox_p90_ms": 1e3 * statistics.quantiles(sandbox_times, n=10)[-1],
    }
    console.print(markdown(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-sandbox.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    update_results_page(results)
    console.print(f"wrote {out} and bench/RESULTS.md's sandbox benchmark section")


if __name__ == "__main__":
    main()
