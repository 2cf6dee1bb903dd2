"""Soak: thousands of evaluations, benign and hostile mixed, through a live run with all sandbox layers.

    .venv/bin/python bench/soak_sandbox.py [--evaluations 10000] [--workers 2]

A real run (loop, islands, SQLite archive, sandbox pool) on a tiny spec,
fed by a proposer that cycles through benign programs and hostile ones
(fork, exec, sockets, memory bombs, secret reads, runaways, forged output).
Every candidate is distinct, so each is evaluated. At the end it checks
that the archive holds every evaluation with the failure kind its program
deserves, that no process of the run is left (no zombie either), and that
the loop process's memory stays flat over the second half: its C heap
(sampled with glibc's mallinfo2) and its live Python allocations (traced
with tracemalloc from half-way on), with what the islands keep by design
counted apart. Exits non-zero when any check fails. Prints a table and writes
bench/results/<date>-<machine>-soak.json. tests/test_sandbox_soak.py runs
a short version of the same thing.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evolve import prompt, session
from evolve.archive import Archive
from evolve.config import RunConfig
from evolve.loop import Evolution
from evolve.proposers.base import Prompt, TextProposer
from evolve.spec import load_spec
from islands import ProgramsDatabase
from sandbox.procs import command_line, descendants

from common import replace_results_section

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


def planned(count: int) -> tuple[str | None, str]:
    """The (expected failure kind, function source) of the soak's `count`-th candidate (1-based)."""
    kind, body = RUNAWAY if count % TIMEOUT_EVERY == 0 else MIX[count % len(MIX)]
    return kind, f"def score(x: float) -> float:\n{body.format(i=count)}\n"


class SoakProposer(TextProposer):
    """Proposes the MIX in turn (and a runaway now and then), each made unique by a counter.

    It keeps nothing but the counter: what each candidate should score is
    recomputed with `planned` after the run, so that the harness itself adds
    nothing to the memory it measures.
    """

    name, model = "soak", ""

    def __init__(self) -> None:
        self.count = 0

    def write(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        out = []
        for _ in prompts:
            batch = []
            for _ in range(n):
                self.count += 1
                batch.append(planned(self.count)[1])
            out.append(batch)
        return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_in_use() -> Callable[[], int]:
    """Return a function giving the C heap in use, KiB (glibc's mallinfo2: SQLite's cache, numpy, ...), or -1."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return lambda: -1

    def in_use() -> int:
        info = libc.mallinfo2()
        return (info.uordblks + info.hblkhd) >> 10

    return in_use


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def soak(evaluations: int, workers: int, directory: Path, timeout_s: float = 1.0, reset_period: int = 30_000) -> dict[str, Any]:
    """Run the soak in `directory`; return its figures (see the module docstring)."""
    spec_path = directory / "soak_spec.py"
    spec_path.write_text(SPEC)
    db = directory / "soak.db"
    config = RunConfig().replace(
        loop={"budget": evaluations, "prompts_per_batch": 16, "samples_per_prompt": 2},
        islands={"num_islands": 4, "reset_period": reset_period}, sandbox={"workers": workers, "timeout_s": timeout_s, "memory_mb": 256},
    )
    archive, spec = session.new_run(str(spec_path), db, config)
    rng = np.random.default_rng(0)
    proposer = SoakProposer()
    rss_start = _rss_kib()
    heap_kib = _malloc_in_use()
    # (evaluations, RSS KiB, C heap in use KiB, Python's allocated blocks), once a batch
    samples: list[tuple[int, int, int, int]] = []

    traced: dict[str, int] = {}  # what tracemalloc saw, from half-way to the end
    objects_at_half: Counter[str] = Counter()  # live objects the garbage collector tracks, by type

    def sample(stats: Any, _rate: float) -> None:
        tracer_kib = tracemalloc.get_tracemalloc_memory() >> 10 if tracemalloc.is_tracing() else 0  # not the loop's
        samples.append((stats.evaluated, _rss_kib() - tracer_kib, heap_kib() - tracer_kib, sys.getallocatedblocks()))
        if not traced and stats.evaluated >= evaluations // 2:  # the second half: warm, steady state
            gc.collect()
            objects_at_half.update(_object_types())
            traced["start_evaluations"] = stats.evaluated
            traced["start_valid"] = stats.valid
            tracemalloc.start(1)

    started = time.monotonic()
    before = descendants([os.getpid()])  # what this process already ran (a test suite's other fixtures): not ours to judge
    with session.pool_for(config) as pool:
        launchers = list(pool.pids)
        evolution = Evolution(load_spec(spec_path), archive, pool, proposer, ProgramsDatabase(config.islands, rng),
                              rng, config)
        evolution.seed()
        rss_warm = _rss_kib()
        reason = evolution.run(on_progress=sample)
        rss_end = _rss_kib()
        traced.update(_python_growth(evolution, traced, objects_at_half))
    elapsed = time.monotonic() - started
    # What the pool started and left behind: its launchers' descendants, and any new child of ours.
    left = sorted((descendants(launchers) | descendants([os.getpid()]) | set(launchers)) - before)
    leftovers = [f"{pid}: {line}" for pid in left if (line := command_line(pid))]  # "" once it exited meanwhile
    reader = Archive.open(db, readonly=True)
    rows = [(p.function, p.failure) for p in reader.written_by("soak")]
    reader.close()
    expected = dict(planned(count)[::-1] for count in range(1, proposer.count + 1))  # source -> kind
    wrong = [(fn, expected.get(fn, "?"), failure) for fn, failure in rows if expected.get(fn, "?") != failure]
    return {
        "evaluations": len(rows), "asked": evaluations, "reason": reason, "workers": workers, "seconds": elapsed,
        "evals_per_s": len(rows) / elapsed, "kinds": dict(Counter(failure or "valid" for _, failure in rows)),
        "wrong_kind": len(wrong), "wrong_examples": wrong[:3], "leftover_processes": leftovers,
        "rss_start_mib": rss_start / 1024, "rss_after_seed_mib": rss_warm / 1024, "rss_end_mib": rss_end / 1024,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **memory_trend(samples), **{k: v for k, v in traced.items() if not k.startswith("start_")},
    }


def _object_types() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


ISLAND_TYPES = {"Cluster", "array"}  # a cluster and its two arrays per new signature


def _python_growth(evolution: Evolution, traced: dict[str, int], objects_at_half: Counter[str]) -> dict[str, Any]:
    """Python allocations made since tracing started and still alive, split into the islands' and the rest.

    The islands keep every program they registered until a reset (FunSearch's
    semantics), so they grow by design. The loop's caches of parents' sources
    and prompt parts are bounded (FUNCTION_CACHE_SIZE entries each) but may
    still be filling: they are emptied before the count. Anything else that
    grows is a leak.
    """
    if not tracemalloc.is_tracing():
        return {}
    evolution._functions.clear()
    prompt.versioned.cache_clear()
    prompt.header.cache_clear()
    gc.collect()
    grown = _object_types() - objects_at_half
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    islands = snapshot.filter_traces([tracemalloc.Filter(True, f"*{os.sep}islands{os.sep}*")])
    harness = snapshot.filter_traces([tracemalloc.Filter(True, __file__)])
    total = sum(t.size for t in snapshot.traces)
    in_islands = sum(t.size for t in islands.traces)
    registered = evolution.stats.valid - traced["start_valid"]  # each valid program is registered on one island
    return {
        "traced_evaluations": evolution.stats.evaluated - traced["start_evaluations"],
        "python_growth_islands_kib": in_islands / 1024,
        "islands_bytes_per_registration": in_islands / max(registered, 1),
        "python_growth_rest_kib": (total - in_islands - sum(t.size for t in harness.traces)) / 1024,
        # Container objects (those the garbage collector tracks) alive at the end and not half-way, by type:
        # a leak of results, futures or candidates shows here by name.
        "objects_grown_rest": {k: v for k, v in grown.most_common() if k not in ISLAND_TYPES},
    }


def memory_trend(samples: Sequence[tuple[int, int, int, int]]) -> dict[str, Any]:
    """Summarize the loop's memory over the run: at each tenth, and its growth over the second half.

    The first half is warm-up: SQLite's page cache (2 MiB by default) fills
    and the islands' clusters appear. A leak shows as growth that goes on
    through the second half.
    """
    if len(samples) < 4:
        return {"memory_samples": [list(s) for s in samples]}
    tenths = [samples[min(len(samples) - 1, round(k * (len(samples) - 1) / 10))] for k in range(11)]
    half, end = samples[len(samples) // 2], samples[-1]
    return {
        "memory_samples": [list(s) for s in tenths],  # (evaluations, RSS KiB, C heap KiB, Python blocks)
        "half_evaluations": half[0],
        "rss_half_mib": half[1] / 1024,
        "rss_second_half_mib": (end[1] - half[1]) / 1024,
        "heap_second_half_mib": (end[2] - half[2]) / 1024 if end[2] >= 0 else None,
        "python_blocks_second_half": end[3] - half[3],
    }


# What "flat" means for the loop's memory over the second half of a soak. Growth that is bounded by design
# is allowed for: the islands keep what they registered (measured apart), SQLite's page cache fills up to
# 2 MiB, and CPython keeps a few hundred freed blocks per thread on its free lists.
FLAT_C_HEAP_MIB = 2.5  # C heap growth (SQLite's page cache, numpy): SQLite's default cache_size is 2 MiB
FLAT_PYTHON_REST_KIB = 512  # Python allocations still alive, outside the islands and the bounded caches


def memory_is_flat(result: dict[str, Any]) -> bool:
    """Whether the loop's memory stayed flat over the soak's second half (see FLAT_*)."""
    heap = result.get("heap_second_half_mib")
    rest = result.get("python_growth_rest_kib")
    return (heap is None or heap < FLAT_C_HEAP_MIB) and rest is not None and rest < FLAT_PYTHON_REST_KIB


def markdown(result: dict[str, Any]) -> str:
    """Render a soak result as bench/RESULTS.md's soak tables."""
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result["kinds"].items()))
    heap = result.get("heap_second_half_mib")
    return "\n".join([
        f"Latest: {result['date']} on {result['machine']}: {result['evaluations']} evaluations, "
        f"{result['workers']} workers, {result['seconds']:.0f} s ({result['evals_per_s']:.0f}/s).",
        "",
        "| archive: evaluations by kind | wrong kind | processes left |",
        "| --- | ---: | ---: |",
        f"| {kinds} | {result['wrong_kind']} | {len(result['leftover_processes'])} |",
        "",
        f"The loop's memory over the second half (evaluations {result['half_evaluations']} to {result['evaluations']}):",
        "",
        "| loop RSS after seeding → half → end, MiB | C heap growth, MiB | Python growth: islands | "
        "Python growth: everything else | flat |",
        "| ---: | ---: | ---: | ---: | :---: |",
        f"| {result['rss_after_seed_mib']:.1f} → {result['rss_half_mib']:.1f} → "
        f"{result['rss_half_mib'] + result['rss_second_half_mib']:.1f} | "
        f"{'n/a' if heap is None else f'{heap:+.2f}'} | "
        f"{result['python_growth_islands_kib']:.0f} KiB ({result['islands_bytes_per_registration']:.0f} B per program "
        f"registered) | {result['python_growth_rest_kib']:+.0f} KiB | {'yes' if memory_is_flat(result) else 'NO'} |",
    ])


def update_results_page(result: dict) -> None:
    replace_results_section("soak", markdown(result))


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
        ("loop RSS half-way, MiB", f"{result['rss_half_mib']:.1f}"),
        ("loop RSS growth over the second half, MiB", f"{result['rss_second_half_mib']:+.2f}"),
        ("  C heap (SQLite cache, numpy), MiB", "n/a" if result.get("heap_second_half_mib") is None
         else f"{result['heap_second_half_mib']:+.2f}"),
        ("  Python, in the islands, KiB", f"{result['python_growth_islands_kib']:.0f}"),
        ("    bytes per program registered", f"{result['islands_bytes_per_registration']:.0f}"),
        ("  Python, everything else, KiB", f"{result['python_growth_rest_kib']:+.0f}"),
        ("memory flat", "yes" if memory_is_flat(result) else "NO"),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-soak.json"
    result.update(date=time.strftime("%Y-%m-%d %H:%M:%S"), machine=machine, python=sys.version.split()[0])
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.evaluations >= 10_000:  # bench/RESULTS.md shows the full soak only
        update_results_page(result)
    Console().print(f"wrote {out}")
    ok = (result["wrong_kind"] == 0 and not result["leftover_processes"] and result["evaluations"] == args.evaluations
          and memory_is_flat(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
