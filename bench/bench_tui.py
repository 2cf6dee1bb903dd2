"""TUI benchmark: first paint and refresh on a synthetic archive of a million programs.

    .venv/bin/python bench/bench_tui.py [--programs 1000000] [--repeats 5] [--db /tmp/evoloop-bench-tui.db]

Builds the archive with `tui.synthetic` (a few rows a microsecond: executemany
in one transaction, indexes afterwards; kept between runs with --reuse),
then measures, headless at 160x50:

- first paint: from creating the app to the first frame that shows the
  whole run (header, curves, islands, top programs), median of --repeats
  fresh apps;
- refresh: a batch of 16 new programs committed as the loop does (each one
  a new best, so the plot is redrawn), then the app's refresh until its
  workers are done and a frame shows them, median of --repeats batches;
- the reads behind them (`ArchiveReader.poll`), and `evolve status` with the
  islands summary the loop commits against the replay of the membership
  table it replaced.

Targets: first paint under 1 s, refresh under 200 ms. Prints a table, writes
bench/results/<date>-<machine>-tui.json and rewrites bench/RESULTS.md's TUI table
(`--from FILE` re-renders it from an earlier results file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from evolve.recorded import recorded_config
from evolve.archive import Archive, NewProgram
from evolve.loop import Evolution, islands_summary_rows
from evolve.status import read_status
from sandbox import Evaluation
from tui.app import EvoloopApp
from tui.reader import ArchiveReader
from tui.synthetic import build
from tui.testing import settle

from common import replace_results_section

RESULTS = Path(__file__).parent / "results"
SIZE = (160, 50)
BATCH = 16
TARGETS = {"first_paint_s": 1.0, "refresh_s": 0.2}
console = Console()


def add_batch(db: Path, batch: int) -> None:
    """Commit one batch of programs, as the loop does (one transaction with the state)."""
    writer = Archive.open(db)
    next_id, sample = writer.last_program_id() + 1, writer.next_sample()
    state = writer.state()
    with writer.transaction():
        for i in range(BATCH):
            score = -56.0 + 0.001 * (batch * BATCH + i)  # each batch a new best
            writer.add_program(NewProgram(
                hash=f"bench-{next_id + i}", function=f"def priority(item, bins):\n    return -(bins - item) * {i}\n",
                parents=(next_id - 1,), island=i % 10, proposer="gp", model="", sample=sample + i,
                evaluation=Evaluation(scores={f"train_{k}": score for k in range(4)}, wall_time=0.05),
            ))
        state["stats"]["samples"] += BATCH
        state["stats"]["evaluated"] += BATCH
        state["stats"]["valid"] += BATCH
        writer.put_state({"stats": state["stats"]})
    writer.close()


async def first_paint(db: Path) -> tuple[float, float]:
    """Return (seconds to the first full frame, seconds the reader took) for a fresh app."""
    started = time.perf_counter()
    app = EvoloopApp(db, interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the snapshot, the plot (drawn in a worker), and the frame with them
        assert not app.error, app.error
        painted = time.perf_counter() - started
        read = app.snapshot.read_s
    return painted, read


async def refreshes(db: Path, repeats: int) -> list[tuple[float, float, float]]:
    """Return (seconds from asking to the frame with the new batch, reader seconds, seconds to that frame) per batch.

    The first figure is what the pilot sees: `press` and `settle` each wait for 20 ms windows in
    which the process is idle (Textual's `wait_for_idle`), which adds some 80-100 ms to the app's
    own work. The last is when the app wrote its last frame (the one with the new plot), which
    is what a user in a terminal sees.
    """
    out = []
    app = EvoloopApp(db, interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        frames: list[float] = []
        display = app._display  # private, but the one place every frame goes through

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None:
                frames.append(time.perf_counter())

        app._display = timed_display  # type: ignore[method-assign]
        await settle(pilot)
        for batch in range(repeats):
            add_batch(db, batch)
            before = app.snapshot
            frames.clear()
            started = time.perf_counter()
            await pilot.press("r")
            while app.snapshot is before:
                await pilot.pause(0.002)
            await settle(pilot)  # the plot is drawn in a worker
            assert app.snapshot.new_programs == BATCH, app.snapshot.new_programs
            out.append((time.perf_counter() - started, app.snapshot.read_s, frames[-1] - started))
    return out


def status_timings(db: Path) -> dict[str, float]:
    """Time `evolve status` as it is now (islands from the state) and the replay it replaced."""
    archive = Archive.open(db, readonly=True)
    started = time.perf_counter()
    info = read_status(archive)
    now = time.perf_counter() - started
    config = recorded_config(archive)
    started = time.perf_counter()
    replayed = islands_summary_rows(Evolution.restore_islands(archive, config, np.random.default_rng(0)))
    replay = time.perf_counter() - started
    assert replayed == [r.to_json() for r in info.islands], "the committed summary must equal the replay"
    reader = ArchiveReader.open(db)
    reader.poll()
    started = time.perf_counter()
    reader.poll()
    idle = time.perf_counter() - started
    archive.close()
    reader.close()
    return {"status_s": now, "status_replay_islands_s": replay, "poll_idle_s": idle}


def measure(db: Path, repeats: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    paints = [asyncio.run(first_paint(db)) for _ in range(repeats)]
    refresh = asyncio.run(refreshes(db, repeats))
    return {
        "first_paint_s": statistics.median(p for p, _ in paints),
        "first_read_s": statistics.median(r for _, r in paints),
        "refresh_s": statistics.median(p for p, _, _ in refresh),
        "refresh_read_s": statistics.median(r for _, r, _ in refresh),
        "refresh_frame_s": statistics.median(f for _, _, f in refresh),
        **status_timings(db),
        "load_average": [load_before, os.getloadavg()[0]],  # other work on the machine inflates every figure
    }


ROWS = [
    ("first paint (app start to full frame)", "first_paint_s", "< 1 s"),
    ("... of which reading the archive", "first_read_s", ""),
    (f"refresh after a batch of {BATCH} programs", "refresh_s", "< 200 ms"),
    ("... of which reading the archive", "refresh_read_s", ""),
    ("... of which the app: key press to the frame with the batch", "refresh_frame_s", ""),
    ("poll with nothing new", "poll_idle_s", ""),
    ("`evolve status` (islands summary from the state)", "status_s", ""),
    ("islands by replaying the membership (before)", "status_replay_islands_s", ""),
]


def markdown(results: dict[str, Any]) -> str:
    m = results["measured"]
    archive = results["archive"]
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), synthetic archive of "
        f"{archive['programs']:,} programs ({archive['bytes'] / 2**20:.0f} MiB, {archive['members']:,} island members, "
        f"{archive['events']} events), median of {results['repeats']}, headless at {SIZE[0]}x{SIZE[1]}, "
        f"load average {m['load_average'][0]:.1f} to {m['load_average'][1]:.1f} on the machine's {os.cpu_count()} cores:",
        "",
        "| | ms | target |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {label} | {1e3 * m[key]:.0f} | {target} |" for label, key, target in ROWS if key in m]  # older files lack some
    return "\n".join(lines)


def update_results_page(results: dict[str, Any]) -> None:
    if not replace_results_section("bench-tui", markdown(results)):
        console.print("[yellow]bench/RESULTS.md has no TUI benchmark markers; left as it is[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, default=Path("/tmp/evoloop-bench-tui.db"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing --db of the same size")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render bench/RESULTS.md from this results file")
    args = parser.parse_args()
    if args.from_file:
        update_results_page(json.loads(args.from_file.read_text()))
        return

    if not (args.reuse and args.db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        console.print(f"building {args.programs:,} programs in {args.db} …")
        archive = build(args.db, args.programs)
        console.print(f"built in {archive['seconds']:.0f}s ({archive['bytes'] / 2**20:.0f} MiB)")
    else:
        console.print(f"reusing {args.db}")
    archive = describe(args.db)
    measured = measure(args.db, args.repeats)

    table = Table(title=f"TUI on {archive['programs']:,} programs (median of {args.repeats})")
    for col in ("", "ms", "target"):
        table.add_column(col, justify="left" if col != "ms" else "right")
    for label, key, target in ROWS:
        table.add_row(label, f"{1e3 * measured[key]:.0f}", target)
    console.print(table)

    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()}cpu-{platform.machine()}"
    out = RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine}-tui.json"
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "python": sys.version.split()[0],
        "repeats": args.repeats, "archive": archive, "measured": measured, "targets": TARGETS,
        "met": {k: measured[k] < v for k, v in TARGETS.items()},
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    update_results_page(results)
    console.print(f"wrote {out} and bench/RESULTS.md's TUI benchmark table")


def describe(db: Path) -> dict[str, Any]:
    archive = Archive.open(db, readonly=True)
    sizes = archive.sizes()
    out = {"programs": sizes.programs, "members": sizes.members, "events": sizes.events, "bytes": db.stat().st_size}
    archive.close()
    return out


if __name__ == "__main__":
    main()
