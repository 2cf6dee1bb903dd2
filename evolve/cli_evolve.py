"""`evolve run` and `evolve resume` at work: the progress bar, Ctrl-C, and the closing summary."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax

from evolve import cli_views as views, runs
from evolve.loop import Evolution, Stats

console = Console()
err_console = Console(stderr=True)


def evolve_run(open_run: Callable[[], runs.Run]) -> None:
    """Open the run (`runs.start` or `runs.resume`), evolve it with a progress bar, and own Ctrl-C."""
    stopping = {"asked": False}
    holder: dict[str, runs.Run] = {}

    def on_sigint(signum: int, frame: Any) -> None:
        if stopping["asked"]:
            _exit_soon(ABORT_GRACE_S)  # a cleanup that hangs cannot keep the process alive
            raise KeyboardInterrupt
        stopping["asked"] = True
        if "run" in holder:  # a proposer waiting on a model or a server gives up its batch now
            holder["run"].interrupt()
        err_console.print("[yellow]stopping: the batch in the sandbox is kept, the one being proposed is dropped "
                          "(Ctrl-C again to abort at once)…[/]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    path = ""
    try:
        with open_run() as run:
            holder["run"], path = run, str(run.path)
            if stopping["asked"]:  # Ctrl-C came while it was seeding
                run.interrupt()
            config = run.config
            console.print(
                f"[bold]evoloop[/] {run.spec.name}: proposer [cyan]{config.proposer}[/], {config.sandbox.workers} "
                f"worker(s), budget {config.loop.budget} samples, archive [cyan]{run.path}[/]"
            )
            console.print(f"sandbox: {run.layers.describe()}", highlight=False)
            for note in run.spec.notes:  # e.g. which cells of a notebook make up the spec
                console.print(escape(note), highlight=False)
            if run.nodes:  # a RayPool: the nodes and their workers
                console.print("ray: " + ", ".join(f"{name} ({n} workers)" for name, n in run.nodes.items()), highlight=False)
            with _progress(run.stats, config.loop.budget) as update:
                reason = run.run(on_progress=update)
            evolution = run.evolution
    except KeyboardInterrupt:
        where = f" Continue with: evolve resume {path}" if path else ""
        err_console.print(f"[yellow]aborted; every committed batch is kept.{where}[/]")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert evolution is not None
    _report_end(evolution, reason)


ABORT_GRACE_S = 5.0  # after a second Ctrl-C, cleanup gets this long before the process exits anyway


def _exit_soon(grace_s: float) -> None:
    """Exit with 130 after `grace_s` unless the process has exited by then (a daemon timer thread)."""
    timer = threading.Timer(grace_s, lambda: os._exit(130))
    timer.daemon = True
    timer.start()


class _progress:
    """A rich progress bar fed by the loop's per-batch callback."""

    def __init__(self, stats: Stats, budget: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]samples"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.task = self.progress.add_task(self._describe(stats, 0.0), total=budget, completed=stats.samples)

    @staticmethod
    def _describe(stats: Stats, rate: float) -> str:
        r = stats.rates()
        best = f"{stats.best_score:.4g}" if stats.best_score is not None else "-"
        tokens = f" {r['tokens_per_s']:.0f} tok/s" if stats.tokens else ""
        tokens += f" [yellow]{stats.notices} proposer notice(s)[/]" if stats.notices else ""
        # idle P: the proposer waiting for the sandbox; S: the sandbox waiting for the proposer.
        return (f"valid {r['valid_share']:4.0%} dup {r['duplicate_share']:3.0%} best {best} {r['samples_per_s']:.1f} samples/s"
                f"{tokens} idle P{r['proposer_waited_share']:.0%} S{r['sandbox_waited_share']:.0%}")

    def __enter__(self) -> Callable[[Stats, float], None]:
        self.progress.__enter__()
        return lambda stats, rate: self.progress.update(self.task, completed=stats.samples, description=self._describe(stats, rate))

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def _report_end(evolution: Evolution, reason: str) -> None:
    stats, path = evolution.stats, evolution.archive.path
    verb = {"budget": "finished", "time": "reached its time limit", "stopped": "stopped"}[reason]
    console.print(f"run {verb}: {views.count_line(stats.samples, stats.evaluated, stats.valid, stats.duplicates, stats.rejected)}, "
                  f"best train score {stats.best_score:.6g}")
    best = evolution.archive.top(1)
    if best:
        console.print(Syntax(best[0].function, "python", theme="ansi_dark", word_wrap=True))
        views.print_metrics(console, evolution.spec.metrics("train", best[0].scores))  # e.g. the spec's reference figures
    hint = f"evolve resume {path}" if reason != "budget" else f"evolve resume {path} --budget N"
    held_out = [s for s in evolution.spec.splits() if s != "train"]  # what `best --split` can score on
    split = "test" if "test" in held_out else (held_out[0] if held_out else None)
    test = f"test it: [cyan]evolve best {path} --split {split}[/]   " if split else "no held-out split to test on;   "
    console.print(f"{test}continue: [cyan]{hint}[/]")
