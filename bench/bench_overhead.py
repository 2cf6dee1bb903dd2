"""What evoloop spends per evaluated candidate beyond the problem's own cost, whole process tree, one run.

    .venv/bin/python bench/bench_overhead.py [--problem bin_packing_or] [--budgets 50 2050] [--repeats 3]

For each proposer (the GP default, and the openai proposer against an instant
mock server on 127.0.0.1, tests/openai_server.py), side by side in one run:

1. `evolve run PROBLEM --budget B` as a subprocess for a small and a large
   budget; the CPU of its whole process tree (the loop, the sandbox workers
   and every forked candidate: `os.wait4` counts all reaped descendants) over
   the candidates evaluated, i.e. the archive's programs. The difference
   between the two budgets is what one more evaluated candidate costs, with
   start-up (imports, worker start, the seed) cancelled out. The mock
   server runs in this process, so its CPU is not counted: a real model's
   is not evoloop's either.
2. the problem's own cost: every program the large run archived beyond the
   small run's count, evaluated here in-process on the train split, CPU time
   of the entry calls alone (median of 3 runs each). Only GP and the mock's
   fixed bodies reach this step: programs from a real model never run here.
3. overhead = (1) - (2), the target being at most 5 ms on bin_packing_or.

Reports the median over `--repeats` pairs of runs. Prints the table, writes
bench/results/<date>-<machine>-overhead.json and rewrites bench/RESULTS.md's
overhead section (`--from FILE` re-renders it from an earlier results file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import replace_results_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
EVOLVE = Path(sys.executable).with_name("evolve")
sys.path.insert(0, str(ROOT / "tests"))  # the mock OpenAI server


def tree_cpu(args: list[str], cwd: Path) -> float:
    """Run `evolve ARGS`; return the CPU seconds (user + system) of it and all its descendants."""
    env = {**os.environ, "EVOLVE_API_KEY": "unused"}
    proc = subprocess.Popen([str(EVOLVE), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"evolve {' '.join(args)} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def archived(db: Path) -> list[tuple[int, str, str | None]]:
    """Return (id, function, failure) of every program the run archived (each was evaluated once)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute("SELECT id, function, failure FROM programs ORDER BY id"))


def in_process_ms(problem: str, functions: list[str]) -> tuple[float, int]:
    """Mean CPU ms of the entry calls on the train split per program, run here; and how many raised."""
    import numpy as np

    from evolve.spec import load_spec

    spec = load_spec(problem)
    inputs = list(spec.inputs("train").values())
    costs, raised = [], 0
    with np.errstate(all="ignore"):
        for function in functions:
            namespace: dict[str, Any] = {}
            # Trusted here: GP trees over the spec's primitives, or the mock server's fixed bodies.
            exec(compile(spec.program(function), "<candidate>", "exec"), namespace)
            entry, runs = namespace[spec.entry], []
            for _ in range(3):
                start = time.process_time()
                try:
                    for value in inputs:
                        entry(value)
                except Exception:  # noqa: BLE001 (a failing candidate costs what it ran)
                    raised += 1
                runs.append(time.process_time() - start)
            costs.append(statistics.median(runs))
    return 1e3 * statistics.mean(costs), raised // 3


def measure(problem: str, proposer: str, budgets: tuple[int, int], seed: int, workers: int, url: str) -> dict[str, Any]:
    """One pair of runs (small, large budget) of `proposer`: tree CPU per extra candidate, in-process cost, overhead."""
    extra = ["--proposer", "openai", "--api-base", url, "--model", "mock"] if proposer == "openai" else []
    cpu, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            db = Path(tmp) / f"{budget}.db"
            cpu[budget] = tree_cpu(["run", problem, "--db", str(db), "--budget", str(budget), "--seed", str(seed),
                                    "--workers", str(workers), *extra], Path(tmp))
            rows[budget] = archived(db)
    small, large = budgets
    added = rows[large][len(rows[small]):]
    per_candidate_ms = 1e3 * (cpu[large] - cpu[small]) / len(added)
    problem_ms, raised = in_process_ms(problem, [function for _, function, _ in added])
    return {"evaluated": {str(b): len(rows[b]) for b in budgets}, "tree_cpu_s": {str(b): cpu[b] for b in budgets},
            "per_candidate_ms": per_candidate_ms, "problem_ms": problem_ms, "overhead_ms": per_candidate_ms - problem_ms,
            "failed": sum(1 for _, _, failure in added if failure), "raised_in_process": raised}


def markdown(results: dict[str, Any]) -> str:
    """Render a results file as bench/RESULTS.md's overhead table."""
    small, large = results["budgets"]
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), `{results['problem']}`, "
        f"budgets {small} and {large}, seed {results['seed']}, {results['workers']} workers, median of "
        f"{results['repeats']} pairs of runs; load average {results['load_average'][0]:.1f} at the end "
        f"(1.0 is one core busy; this benchmark keeps about two busy itself).",
        "",
        "| proposer | evaluated (large run) | CPU ms per extra candidate, whole tree | problem's own ms, in-process "
        "| overhead ms (target ≤ 5) | spread of overhead |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {"gp": "GP (the default)", "openai": "openai, instant mock server"}
    for proposer, runs in results["runs"].items():
        over = [r["overhead_ms"] for r in runs]
        lines.append(
            f"| {names.get(proposer, proposer)} | {statistics.median(r['evaluated'][str(large)] for r in runs):.0f} | "
            f"{statistics.median(r['per_candidate_ms'] for r in runs):.1f} | "
            f"{statistics.median(r['problem_ms'] for r in runs):.1f} | {statistics.median(over):.1f} | "
            f"{min(over):.1f}–{max(over):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="bin_packing_or", help="built-in problem [default: bin_packing_or]")
    parser.add_argument("--budgets", type=int, nargs=2, default=(50, 2050), metavar=("SMALL", "LARGE"),
                        help="samples of the two runs whose difference is measured [default: 50 2050]")
    parser.add_argument("--proposers", nargs="+", default=["gp", "openai"], choices=["gp", "openai"])
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs per proposer [default: 3]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="sandbox workers [default: CPUs]")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    if args.from_file:
        replace_results_section("bench-overhead", markdown(json.loads(args.from_file.read_text())))
        return
    from openai_server import fake_openai

    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in args.proposers}
    with fake_openai() as server:
        for repeat in range(args.repeats):
            for proposer in args.proposers:  # interleaved, so that a change in the machine's load hits both
                run = measure(args.problem, proposer, tuple(args.budgets), args.seed, args.workers, server.url)
                runs[proposer].append(run)
                print(f"{proposer} #{repeat + 1}: {run['per_candidate_ms']:.2f} ms per candidate, problem "
                      f"{run['problem_ms']:.2f} ms, overhead {run['overhead_ms']:.2f} ms", flush=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
               "problem": args.problem, "budgets": list(args.budgets), "seed": args.seed, "workers": args.workers,
               "repeats": args.repeats, "load_average": os.getloadavg(), "runs": runs}
    print(markdown(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-overhead.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    if replace_results_section("bench-overhead", markdown(results)):
        print(f"wrote {out} and bench/RESULTS.md's overhead section")
    else:
        print(f"wrote {out}; bench/RESULTS.md has no bench-overhead markers")


if __name__ == "__main__":
    main()
