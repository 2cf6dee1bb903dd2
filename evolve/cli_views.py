"""What the CLI prints about a run: the status lines and tables, the best program against the baselines, metrics.

    print_status(console, read_status(archive))     # `evolve status`

Each function renders a typed record onto the console it is given; `evolve.cli`
owns the consoles and decides what to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evolve.session import BestProgram, Result
from evolve.status import Status
from finetune.registry import ARM_FIELDS, AdapterEvidence

ISLAND_COLUMNS = ("island", "best_score", "best_program_id", "num_clusters", "num_programs", "temperature")


def print_status(console: Console, s: Status) -> None:
    """Print a run's progress, pipeline, writers, failures, best program, islands and adapter rounds."""
    console.print(
        f"[bold]{s.problem}[/] ({s.state}): {count_line(s.samples, s.evaluated, s.valid, s.duplicates, s.rejected, s.budget)}, "
        f"{s.evals_per_s:.1f} evals/s over {s.elapsed_s:.0f}s"
    )
    pipe = s.pipeline
    console.print(
        f"pipeline: {pipe.samples_per_s:.1f} samples/s, {pipe.tokens_per_s:.0f} tokens/s, "
        f"duplicates {pipe.duplicate_share:.1%}, rejected {pipe.rejected_share:.1%}; idle: proposer "
        f"{pipe.proposer_waited_share:.0%} (waiting for the sandbox), sandbox {pipe.sandbox_waited_share:.0%} (for the proposer)"
    )
    if s.notices:
        console.print(f"[yellow]proposer notices: {s.notices}[/] (latest: {escape(s.last_notices[-1]) if s.last_notices else '-'})",
                      highlight=False)
    writers = [r for r in s.by_proposer if r.proposer != "seed"]
    if len(writers) > 1:
        console.print("by proposer: " + ", ".join(
            f"{r.proposer}{' ' + r.model if r.model else ''}: {r.valid}/{r.programs} valid" for r in writers
        ))
    if s.by_node:
        console.print("by node: " + ", ".join(f"{r.node}: {r.valid}/{r.programs} valid" for r in s.by_node))
    if s.failures or s.rejected:
        console.print(f"failures: {dict(s.failures)}  rejected: {dict(s.rejected)}")
    score = f"{s.score:.6g}" if s.score is not None else "-"
    console.print(f"best: program {s.best_id}, train score {score}")
    print_metrics(console, s.metrics)
    table = Table("island", "best score", "best program", "clusters", "programs", "temperature")
    for row in s.islands:
        values = [getattr(row, k) for k in ISLAND_COLUMNS]
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)
    if s.adapters:
        console.print(adapters_table(s.adapters))


def count_line(samples: int, evaluated: int, valid: int, duplicates: int, rejected: Mapping[str, int],
               budget: int | None = None) -> str:
    """Say what the counters count, so that they add up: samples = evaluated + duplicates + rejected.

    `evaluated` and `valid` count programs run in the sandbox, the seed (the spec's own function) among them;
    a sample is a candidate a proposer wrote. Samples still in the sandbox are in neither yet.
    """
    seeded = 1 if evaluated else 0
    parts = f"{evaluated - seeded} evaluated, {duplicates} duplicates, {sum(rejected.values())} rejected"
    of = f"/{budget}" if budget is not None else ""
    return f"{samples}{of} samples ({parts}); {valid}/{evaluated} programs valid, the seed included"


def adapters_table(rows: Sequence[AdapterEvidence]) -> Table:
    """Each LoRA round's samples next to the base model's over the same window (round 0: before any)."""
    table = Table("round", "samples", "arm", "programs", "valid", "mean score", "best score", "beat parent",
                  title="adapters: each round vs the base model over the same samples")
    for row in rows:
        window = f"{row.from_sample}-{row.to_sample if row.to_sample is not None else 'now'}"
        arms = [("adapter", row.with_adapter), ("base", row.base)] if row.round else [("base", row.base)]
        for arm, figures in arms:
            cells = [getattr(figures, k) if figures is not None else None for k in ARM_FIELDS]
            shares = [f"{c:.0%}" if c is not None else "-" for c in (cells[1], cells[4])]
            scores = [f"{c:.4g}" if c is not None else "-" for c in (cells[2], cells[3])]
            table.add_row(str(row.round), window, arm, str(cells[0]), shares[0], *scores, shares[1])
    return table


def print_comparison(console: Console, best: BestProgram, baselines: Sequence[Result]) -> None:
    """Print the best program's per-input figures next to the baselines'."""
    metric = main_metric(best.metrics)
    table = Table(title=f"{best.split} split: program {best.id} vs baselines" + (f" ({metric})" if metric else " (score)"))
    table.add_column("input")
    table.add_column(f"program {best.id}", justify="right")
    for b in baselines:
        table.add_column(b.name, justify="right")
    for name, score in best.scores.items():
        cells = [_cell(best.metrics, metric, name, score)]
        cells += [_cell(b.metrics, metric, name, b.evaluation.scores.get(name)) for b in baselines]
        table.add_row(name, *cells)
    console.print(table)


def print_metrics(console: Console, metrics: Mapping[str, Any]) -> None:
    """Print a spec's metrics, one line each (per-input ones as `input figure` pairs)."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            console.print(f"  {key}: " + ", ".join(f"{k} {figure(v)}" for k, v in value.items()))
        else:
            console.print(f"  {key}: {value}")


def main_metric(metrics: Mapping[str, Any]) -> str | None:
    """Return the first per-input metric's name (the one the comparison table shows), if any."""
    return next((k for k, v in metrics.items() if isinstance(v, dict)), None)


def _cell(metrics: Mapping[str, Any], metric: str | None, name: str, score: float | None) -> str:
    if metric and name in metrics.get(metric, {}):
        return figure(metrics[metric][name])
    return "-" if score is None else f"{score:.6g}"


def figure(value: Any) -> str:
    """Format a metric: whole counts as such (1060 equations), else two decimals, or three significant
    digits for small ones (NMSE 2.1e-05)."""
    if not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
