"""Render a benchmark-suite results file: markdown tables, PNG curves, the search-quality section of bench/RESULTS.md.

    .venv/bin/python bench/suite.py --from bench/results/<date>-<machine>.json

Everything here reads the results dict alone (the views, baselines, references
and per-checkpoint figures it holds), so any figure can be regenerated from the
file without running a search.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common import RESULTS_PAGE, replace_results_section

REPO = Path(__file__).resolve().parent.parent  # commands are run from here
MARKER = "results"  # bench/RESULTS.md's section sits between <!-- results:start --> and <!-- results:end -->
DEFAULT = "default"
Row = Mapping[str, Any]


# -- reading figures out of the results -----------------------------------------------------------


def metric(scored: Row | None, view: Row, name: str) -> float | None:
    """Return the view's metric for input `name` of a scored record ({score, scores, metrics}), None if failed."""
    if not scored or scored.get("score") is None:
        return None
    value = scored.get("metrics", {}).get(view["metric"], {}).get(name)
    return None if value is None else float(value)


def checkpoint_value(checkpoint: Row, view: Row, split: str, name: str) -> float | None:
    return metric(checkpoint[split], view, name)


def baseline_value(results: Row, problem: str, baseline: str, split: str, name: str) -> float | None:
    return metric(results["baselines"][problem][baseline].get(split), results["views"][problem], name)


def runs_of(results: Row, problem: str, proposer: str | None = None, variant: str = DEFAULT) -> list[Row]:
    return [r for r in results["runs"] if r["problem"] == problem and r["variant"] == variant
            and (proposer is None or r["proposer"] == proposer)]


def test_inputs(results: Row, problem: str) -> list[str]:
    """Return the test inputs' names in the order the baselines report them."""
    first = next(iter(results["baselines"][problem].values()))
    return list(first["test"]["scores"])


def mean(values: Iterable[float | None]) -> float | None:
    """Return the mean, or None when any value is missing (a failed program)."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(values)  # type: ignore[arg-type]


def fmt(value: float | None, view: Row) -> str:
    if value is None:
        return "fail"
    if view["metric"] == "size":
        return f"{value:.0f}"
    if view["lower_is_better"] and view["metric"] == "excess_percent":
        return f"{value:.2f}"
    return f"{value:.3g}"


def _proposers(results: Row, problem: str) -> list[str]:
    return list(dict.fromkeys(r["proposer"] for r in runs_of(results, problem)))


# -- markdown -----------------------------------------------------------------------------------


def problem_table(results: Row, problem: str) -> list[str]:
    """Return the markdown lines of one problem's table: each seed's final best on test, baselines, references."""
    view = results["views"][problem]
    names = test_inputs(results, problem)
    with_mean = len(names) > 1 and view["metric"] == "excess_percent"
    runs = runs_of(results, problem)
    samples = runs[0]["samples"] if runs else 0
    head = ["", *names, *(["mean"] if with_mean else []), "train score", "run s"]
    lines = [f"**`{problem}`**: {view['label']} on the test split, best program after {samples} samples"
             + (f" ({view['note']})" if view.get("note") else "") + ":", "",
             "| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]

    def row(label: str, values: list[float | None], train: float | None, seconds: float | None) -> str:
        cells = [fmt(v, view) for v in values]
        if with_mean:
            cells.append(fmt(mean(values), view))
        cells.append("" if train is None else f"{train:.6g}")
        cells.append("" if seconds is None else f"{seconds:.0f}")
        return f"| {label} | " + " | ".join(cells) + " |"

    for proposer in _proposers(results, problem):
        mine = runs_of(results, problem, proposer)
        finals = [r["checkpoints"][-1] for r in mine]
        for run, final in zip(mine, finals):
            lines.append(row(f"{proposer.upper() if proposer == 'gp' else proposer}, seed {run['seed']}",
                             [checkpoint_value(final, view, "test", n) for n in names],
                             final["train"]["score"] if final["train"] else None, run["seconds"]))
        if len(mine) > 1:
            per_input = [mean(checkpoint_value(f, view, "test", n) for f in finals) for n in names]
            trains = [f["train"]["score"] if f["train"] else None for f in finals]
            lines.append(row(f"**{proposer.upper() if proposer == 'gp' else proposer}, mean of {len(mine)}**",
                             per_input, mean(trains), mean(r["seconds"] for r in mine)))
    for name, scored in _distinct_baselines(results, problem).items():
        lines.append(row(name.replace("_", " "), [metric(scored["test"], view, n) for n in names],
                         scored["train"]["score"], None))
    for label, figures in view.get("references", {}).items():
        values = [figures.get(n) for n in names]
        lines.append(row(label, values, None, None))
    return lines


def _distinct_baselines(results: Row, problem: str) -> dict[str, Row]:
    """Return the baselines, without the seed where it is one of them (bin packing: best fit)."""
    found = results["baselines"][problem]

    def same(a: Row, b: Row) -> bool:
        return a["test"]["scores"] == b["test"]["scores"] and a["train"]["scores"] == b["train"]["scores"]

    return {k: v for k, v in found.items() if not (k == "seed" and any(same(v, o) for n, o in found.items() if n != k))}


def _train_at(runs: Sequence[Row], budget: int) -> float | None:
    """Return the mean over runs of the best train score by `budget` (None if a run has no such checkpoint)."""
    scores = []
    for run in runs:
        found = [c for c in run["checkpoints"] if c["samples"] == budget]
        scores.append(found[0]["train"]["score"] if found and found[0]["train"] else None)
    return mean(scores)


def budget_table(results: Row) -> list[str]:
    """Return markdown lines: per problem and proposer, the mean best train score by each checkpoint budget."""
    groups = list(dict.fromkeys((r["problem"], r["proposer"]) for r in results["runs"] if r["variant"] == DEFAULT))
    budgets = sorted({c["samples"] for r in results["runs"] for c in r["checkpoints"]})
    head = ["problem", "proposer", *(f"@ {b}" for b in budgets), "run s", "run CPU s"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for problem, proposer in groups:
        runs = runs_of(results, problem, proposer)
        cells = ["-" if (v := _train_at(runs, b)) is None else f"{v:.6g}" for b in budgets]
        cells.append(f"{mean(r['seconds'] for r in runs):.0f}")
        cpu = mean(r.get("cpu_s") for r in runs)
        cells.append("" if cpu is None else f"{cpu:.0f}")
        lines.append(f"| `{problem}` | {proposer} | " + " | ".join(cells) + " |")
    return lines


def ablation_table(results: Row, problem: str) -> list[str]:
    """Return markdown lines comparing the variants of a problem: train score by budget, final test figure."""
    view = results["views"][problem]
    variants = list(dict.fromkeys(r["variant"] for r in results["runs"] if r["problem"] == problem and r["proposer"] == "gp"))
    if len(variants) < 2:
        return []
    budgets = [c["samples"] for c in runs_of(results, problem, "gp", variants[0])[0]["checkpoints"]]
    names = [n for split, n in view["plot"] if split == "test"]
    head = ["variant", *(f"train @ {b}" for b in budgets),
            *([f"test {view['metric']}, mean of {', '.join(names)}"] if names else []), "run s"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for variant in variants:
        runs = runs_of(results, problem, "gp", variant)
        cells = ["-" if (v := _train_at(runs, b)) is None else f"{v:.6g}" for b in budgets]
        if names:
            finals = [mean(checkpoint_value(r["checkpoints"][-1], view, "test", n) for n in names) for r in runs]
            cells.append(fmt(mean(finals), view))
        cells.append(f"{mean(r['seconds'] for r in runs):.0f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: Row, plot: str | None = None) -> str:
    """Render the whole results file as markdown (with `plot`, a relative PNG path, shown after the first table)."""
    load = results.get("load_before")
    lines = [
        f"Latest: {results['date']} on {results['machine']} (Python {results['python']}), "
        f"{results['workers']} sandbox workers, runs in sequence, seeds {', '.join(map(str, results['seeds']))}; "
        f"the whole suite took {results.get('wall_s', 0) / 60:.1f} min"
        + (f" of wall time and {results['cpu_s'] / 60:.1f} min of CPU time" if results.get("cpu_s") else "")
        + (f" (load average {load[0]:.1f} at the start" if load else "")
        + (f", {results['load_after'][0]:.1f} at the end)" if load and results.get("load_after") else ")" if load else "")
        + ("." if results.get("complete", True) else "; **incomplete: the suite stopped early**."),
        "",
    ]
    problems = [p for p in results["views"] if runs_of(results, p)]
    for i, problem in enumerate(problems):
        lines += problem_table(results, problem) + [""]
        if plot and i == 0:
            lines += [f"![best so far vs samples, {problem}]({plot})", ""]
    lines += ["Best train score found by each sample budget, mean over seeds (higher is better; "
              "budget 0 is the seed program):", "", *budget_table(results), ""]
    for problem in problems:
        table = ablation_table(results, problem)
        if table:
            lines += [f"Ablations on `{problem}`, GP default, each changing one setting (mean over seeds):", "",
                      *table, ""]
    return "\n".join(lines).rstrip()


# -- plots -----------------------------------------------------------------------------------------


def _series(runs: Sequence[Row], view: Row, split: str, name: str) -> tuple[list[int], list[list[float]]]:
    budgets = [c["samples"] for c in runs[0]["checkpoints"]]
    values = [[math.nan if (v := checkpoint_value(c, view, split, name)) is None else v for c in r["checkpoints"]]
              for r in runs]
    return budgets, values


def plot_problem(results: Row, problem: str, path: Path) -> Path:
    """Draw best-so-far versus samples for each of the view's inputs, with baselines and references as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view = results["views"][problem]
    panels = view["plot"]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.0, 4.2 * len(panels)), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (split, name) in zip(axes[0], panels):
        for k, proposer in enumerate(_proposers(results, problem)):
            budgets, values = _series(runs_of(results, problem, proposer), view, split, name)
            for v in values:
                ax.plot(budgets, v, color=colors[k], alpha=0.35, lw=1, marker=".")
            mean_curve = [statistics.fmean(col) if not any(math.isnan(x) for x in col) else math.nan
                          for col in zip(*values)]
            ax.plot(budgets, mean_curve, color=colors[k], lw=2.2, marker="o", label=f"{proposer} (mean of {len(values)})")
        styles = iter(["--", "-.", ":", (0, (5, 1))])
        for baseline, scored in _distinct_baselines(results, problem).items():
            value = metric(scored.get(split), view, name)
            if value is not None:
                ax.axhline(value, color="0.45", ls=next(styles, "--"), lw=1, label=baseline.replace("_", " "))
        for label, figures in view.get("references", {}).items():
            if name in figures:
                ax.axhline(figures[name], color="tab:red", ls=":", lw=1.5, label=label)
        if view.get("log_y"):
            ax.set_yscale("log")
        ax.set_title(name if name == split else f"{name} ({split})", fontsize=10)
        ax.set_xlabel("samples")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(("lower is better: " if view["lower_is_better"] else "") + view["metric"])
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{problem}: best program so far ({view['label']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ablations(results: Row, problem: str, path: Path) -> Path:
    """Draw the mean over seeds of the best train score versus samples, one line per variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    variants = list(dict.fromkeys(r["variant"] for r in results["runs"] if r["problem"] == problem and r["proposer"] == "gp"))
    for variant in variants:
        runs = runs_of(results, problem, "gp", variant)
        budgets = [c["samples"] for c in runs[0]["checkpoints"]]
        curve = [statistics.fmean(r["checkpoints"][i]["train"]["score"] for r in runs) for i in range(len(budgets))]
        ax.plot(budgets, curve, marker="o", lw=2.4 if variant == DEFAULT else 1.4, label=variant)
    styles = iter(["--", "-.", ":", (0, (5, 1))])
    for baseline, scored in _distinct_baselines(results, problem).items():
        if scored["train"]["score"] is not None:
            ax.axhline(scored["train"]["score"], color="0.45", ls=next(styles, "--"), lw=1,
                       label=baseline.replace("_", " "))
    ax.set_xlabel("samples")
    ax.set_ylabel("best train score (mean over seeds)")
    ax.set_title(f"{problem}: ablations of the GP default", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- everything ------------------------------------------------------------------------------------


def render(results: Row, out: Path, page: Path | None = RESULTS_PAGE) -> list[Path]:
    """Write `<out stem>.md` and the PNGs next to the results file; rewrite the section of `page` if asked."""
    stem = out.with_suffix("")
    written = []
    problems = [p for p in results["views"] if runs_of(results, p)]
    for problem in problems:
        written.append(plot_problem(results, problem, Path(f"{stem}-{problem}.png")))
    for problem in problems:
        if len({r["variant"] for r in results["runs"] if r["problem"] == problem}) > 1:
            written.append(plot_ablations(results, problem, Path(f"{stem}-{problem}-ablations.png")))
    shown = written[0] if written else None
    md = Path(f"{stem}.md")
    md.write_text(markdown(results, shown.name if shown else None) + "\n")
    written.append(md)
    if page is not None:
        rel = _relative(shown, page.parent) if shown else None  # image links are relative to the page
        section = markdown(results, rel) + "\n\n" + reproduce(out)
        if not replace_results_section(MARKER, section, page):
            raise SystemExit(f"{page} has no <!-- {MARKER}:start --> / <!-- {MARKER}:end --> markers")
        written.append(page)
    return written


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def reproduce(out: Path) -> str:
    """The line under the tables: the commands that make them (paths from the repository's root)."""
    return ("Reproduce: `make bench` (installs the `bench` extra: matplotlib) runs the suite and rewrites this "
            f"section; `.venv/bin/python bench/suite.py --from {_relative(out, REPO)}` re-renders the tables, "
            "the plots and this section from the results file without running anything.")
