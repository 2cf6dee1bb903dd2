"""Soak: thousands of evaluations, benign and hostile mixed, through a live run with all sandbox layers.

    .venv/bin/python bench/soak_sandbox.py [--evaluations 10000] [--workers 2]

A real run (loop, islands, SQLite archive, sandbox pool) on a tiny spec,
fed by a proposer that cycles through benign programs and hostile ones
(fork, exec, sockets, memory bombs, secret reads, runaways, forged output).
Every candidate is distinct, so each is evaluated. At the end it checks
that the archive holds every evaluation with the failure kind its program
deserves, that no process of the run is left (no zombie either), and how
much the loop process's memory grew. Prints a table and writes
bench/results/<date>-<machine>-soak.json. tests/test_sandbox_soak.py runs
a short version of the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evolve import session
from evolve.config import RunConfig
from evolve.loop import Evolution
from evolve.proposers.base import Prompt
from evolve.spec import load_spec
from islands import ProgramsDatabase

from common import replace_readme_section

RESULTS = Path(__file__).parent / "results"
SPEC = '''
import numpy as np
import evolve

INPUTS = {"train": {"a": 1.0, "b": 2.0}}


@evolve.run
def evaluate(x: float) -> float:
    return score(x)


@evolve.evolve
def score(x: float) -> float:
    return x
'''
# kind expected in the archive (None: a valid program) -> a body template; {i} makes each one distinct.
MIX: list[tuple[str | None, str]] = [
    (None, "    return x + {i}"),
    (None, "    return float(np.sum(np.arange(3.0))) * x - {i}"),
    (None, "    import math\n    return math.sqrt(x) + {i}"),
    (None, "    return x * 2 + {i}"),
    ("forbidden", "    import os\n    os.fork()\n    return {i}"),
    ("forbidden", "    import subprocess\n    subprocess.run(['true'])\n    return {i}"),
    ("memory", "    return float(len(bytearray(10**11))) + {i}"),
    ("error", "    return 1 / 0 + {i}"),
    ("error", "    import socket\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    return {i}"),
    ("error", "    return float(len(open('/etc/shadow').read())) + {i}"),
    ("invalid-output", "    return 'not a number {i}'"),
    ("error", "    import ctypes\n    ctypes.string_at(0)\n    return {i}"),
    ("invalid-output", "    import os\n    p = b'{{\"scores\": {{\"a\": NaN}}}}'\n"
                       "    for fd in range(3, 32):\n        try:\n            os.write(fd, len(p).to_bytes(4, 'big') + p)\n"
                       "        except OSError:\n            pass\n    os._exit({i} % 2)"),
]
RUNAWAY = ("timeout", "    while True:\n        x += {i}")  # one in TIMEOUT_EVERY: each costs a full deadline
TIMEOUT_EVERY = 200


class SoakProposer:
    """Proposes the MIX in turn (and a runaway now and then), each made unique by a counter."""

    name, model = "soak", ""

    def __init__(self) -> None:
        self.count = 0
        self.expected: dict[str, str | None] = {}  # function source -> expected failure kind

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        out = []
        for _ in prompts:
            batch = []
            for _ in range(n):
                self.count += 1
                kind, body = RUNAWAY if self.count % TIMEOUT_EVERY == 0 else MIX[self.count % len(MIX)]
                source = f"def score(x: float) -> float:\n{body.format(i=self.count)}\n"
                self.expected[source] = kind
                batch.append(source)
            out.append(batch)
        return out


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _processes_below(pid: int) -> list[int]:
    """Every process descending from `pid` (zombies included), from /proc."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def soak(evaluations: int, workers: int, directory: Path, timeout_s: float = 1.0) -> dict[str, Any]:
    """Run the soak in `directory`; return its figures (see the module docstring)."""
    spec_path = directory / "soak_spec.py"
    spec_path.write_text(SPEC)
    db = directory / "soak.db"
    config = RunConfig().replace(
        loop={"budget": evaluations, "prompts_per_batch": 16, "samples_per_prompt": 2},
        islands={"num_islands": 4}, sandbox={"workers": workers, "timeout_s": timeout_s, "memory_mb": 256},
    )
    archive, spec = session.new_run(str(spec_path), db, config)
    rng = np.random.default_rng(0)
    proposer = SoakProposer()
    rss_start = _rss_kib()
    started = time.monotonic()
    with session.pool_for(config) as pool:
        launchers = list(pool.pids)
        evolution = Evolution(load_spec(spec_path), archive, pool, proposer, ProgramsDatabase(config.islands, rng),
                              rng, config)
        evolution.seed()
        rss_warm = _rss_kib()
        reason = evolution.run()
        rss_end = _rss_kib()
    elapsed = time.monotonic() - started
    left = [p for launcher in launchers for p in _processes_below(launcher)] + _processes_below(os.getpid())
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT function, failure FROM programs WHERE proposer = 'soak'").fetchall()
    wrong = [(fn, proposer.expected.get(fn), failure) for fn, failure in rows if proposer.expected.get(fn) != failure]
    return {
        "evaluations": len(rows), "asked": evaluations, "reason": reason, "workers": workers, "seconds": elapsed,
        "evals_per_s": len(rows) / elapsed, "kinds": dict(Counter(failure or "valid" for _, failure in rows)),
        "wrong_kind": len(wrong), "wrong_examples": wrong[:3], "leftover_processes": left,
        "rss_start_mib": rss_start / 1024, "rss_after_seed_mib": rss_warm / 1024, "rss_end_mib": rss_end / 1024,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def markdown(result: dict[str, Any]) -> str:
    """Render a soak result as the README's soak table."""
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result["kinds"].items()))
    return "\n".join([
        f"Latest: {result['date']} on {result['machine']}: {result['evaluations']} evaluations, "
        f"{result['workers']} workers, {result['seconds']:.0f} s ({result['evals_per_s']:.0f}/s).",
        "",
        "| archive: evaluations by kind | wrong kind | processes left | loop RSS after seeding → end, MiB |",
        "| --- | ---: | ---: | ---: |",
        f"| {kinds} | {result['wrong_kind']} | {len(result['leftover_processes'])} | "
        f"{result['rss_after_seed_mib']:.1f} → {result['rss_end_mib']:.1f} |",
    ])


def update_readme(result: dict) -> None:
    replace_readme_section("soak", markdown(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        result = soak(args.evaluations, args.workers, Path(tmp))
    table = Table(title=f"Sandbox soak: {result['evaluations']} evaluations, {args.workers} workers")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("run ended by", result["reason"]), ("evaluations in the archive", str(result["evaluations"])),
        ("with the wrong failure kind", str(result["wrong_kind"])),
        *((f"  {kind}", str(n)) for kind, n in sorted(result["kinds"].items())),
        ("processes left (zombies included)", str(len(result["leftover_processes"]))),
        ("seconds", f"{result['seconds']:.0f}"), ("evaluations/s", f"{result['evals_per_s']:.0f}"),
        ("loop RSS after seeding, MiB", f"{result['rss_after_seed_mib']:.1f}"),
        ("loop RSS at the end, MiB", f"{result['rss_end_mib']:.1f}"),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-soak.json"
    result.update(date=time.strftime("%Y-%m-%d %H:%M:%S"), machine=machine, python=sys.version.split()[0])
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.evaluations >= 10_000:  # the README shows the full soak only
        update_readme(result)
    Console().print(f"wrote {out}")
    ok = result["wrong_kind"] == 0 and not result["leftover_processes"] and result["evaluations"] == args.evaluations
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
