"""The long-budget suite: what an hour of 2 CPU cores buys the GP default, per problem and seed.

    make bench-long                     # 4 problems x 3 seeds x 60 min: about 12 hours on 2 free cores
    .venv/bin/python bench/suite_long.py [--minutes 60] [--only cap_set ...] [--seeds 0 1 2] [--workers 2]
    .venv/bin/python bench/suite_long.py --from bench/results/<date>-<machine>-long.json   # re-render only
    .venv/bin/python bench/suite_long.py --add FILE --only cap_set --seeds 2   # more runs into an earlier file

Each run evolves for a fixed wall time with no sample cap. Afterwards its
archive gives, for each checkpoint time, the best program recorded by then
(by train score) and how many samples had been drawn; each of those programs
is scored once on the test split. The results file (rewritten after every
run, so a crash keeps what was measured) holds all of it; the headline table
(mean and min-max over seeds of each problem's target figure, the time each
run took to reach its final figure, the target), the curves against wall time
and against samples, and the `search-long` section of bench/RESULTS.md are
rendered from that file alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from common import RESULTS_PAGE, replace_results_section
from evolve import session
from evolve.archive import Archive, ProgramRow
from evolve.config import RunConfig
from evolve.proposers.gp import GPProposer
from sandbox import Limits, SandboxPool

import suite
import suite_report

LONG_MARKER = "search-long"  # bench/RESULTS.md's section
SUMMARY_MARKER = "search-long-summary"  # the README's headline table
README = suite_report.REPO / "README.md"
SAMPLE_CAP = 10**9  # the run stops on time, never on samples
FRACTIONS = (0.0, 1 / 60, 1 / 30, 1 / 12, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 5 / 6, 1.0)  # checkpoints, of the run's time
console = Console()


@dataclass(frozen=True)
class Headline:
    """One problem's figure of merit: a metric averaged over some inputs of a split, and the issue's target."""

    split: str
    inputs: tuple[str, ...]  # averaged
    target: float  # met when the mean over seeds is at least as good
    reference: tuple[str, float]  # (who, figure) published
    label: str


HEADLINES: dict[str, Headline] = {
    "bin_packing_weibull": Headline("test", ("Weibull 5k",), 1.0, ("FunSearch", 0.68), "Weibull 5k test excess, %"),
    "bin_packing_or": Headline("test", ("OR1", "OR2", "OR3", "OR4"), 4.5, ("FunSearch", 3.77),
                               "OR1-OR4 mean test excess, %"),
    "cap_set": Headline("train", ("n8",), 400, ("FunSearch", 512), "cap set size, n = 8"),
    "circle_packing": Headline("test", ("n26",), 2.635, ("best published", 2.6359830853),
                               "sum of radii, n = 26 (zero tolerance)"),
}
VIEWS: dict[str, suite.View] = {
    **{p: suite.VIEWS[p] for p in HEADLINES if p in suite.VIEWS},
    "circle_packing": suite.View(
        "sum_of_radii", "sum of radii of n circles in the unit square (no overlap, no tolerance)", False,
        (("test", "n26"),), references={"best published": {"n26": 2.6359830853}}),
}


def checkpoint_seconds(minutes: float) -> list[float]:
    return [round(f * minutes * 60, 3) for f in FRACTIONS]


# Variants run side by side with --arms: settings over the GP default.
ARMS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    "cascade": {"loop": {"cascade": True}},  # the evaluation cascade (loop.cascade)
    "no-semantic-dedupe": {"gp": {"semantic_dedupe": False}},  # source dedupe only, as before 2026-12-07
}


def run_config(seed: int, workers: int, seconds: float, arm: str = "default") -> RunConfig:
    """The GP default (with an arm's settings over it), stopped by wall time alone."""
    config = RunConfig().replace(loop={"budget": SAMPLE_CAP, "seed": seed, "time_limit_s": seconds},
                                 sandbox={"workers": workers})
    return config.replace(**ARMS[arm])


def by_time(archive: Archive, start: float, seconds: Sequence[float]) -> list[tuple[float, int, ProgramRow | None]]:
    """Per checkpoint: (seconds after start, samples drawn by then, the best valid program recorded by then)."""
    return [(s, archive.samples_recorded_by(start + s), archive.best_recorded_by(start + s)) for s in seconds]


def one_run(problem: str, seed: int, minutes: float, workers: int, tmp: Path, pool: SandboxPool,
            arm: str = "default") -> dict[str, Any]:
    """Evolve `problem` for `minutes`; return the run's record with its checkpoints scored on train and test."""
    config = run_config(seed, workers, minutes * 60, arm)
    date, load = time.strftime("%Y-%m-%d %H:%M:%S"), list(os.getloadavg())
    archive, spec = session.new_run(problem, tmp / f"{problem}-{seed}-{time.time_ns()}.db", config)
    started, cpu = time.perf_counter(), suite.cpu_seconds()
    with session.pool_for(config) as run_pool:
        evolution = session.open_evolution(archive, spec, config, run_pool, fresh=True)
        seed_row = archive.best_until(0)  # the seed, evaluated by open_evolution: the clock starts there
        evolution.run()
    seconds, cpu = time.perf_counter() - started, suite.cpu_seconds() - cpu
    start = seed_row.created if seed_row and seed_row.created else time.time() - seconds
    points = by_time(archive, start, checkpoint_seconds(minutes))
    stats = evolution.stats
    repeats = evolution.proposer.semantic_repeats if isinstance(evolution.proposer, GPProposer) else None
    archive.close()
    scored = suite.score_checkpoints(spec, [(s, p) for s, _, p in points], pool)
    checkpoints = [{**c, "seconds": s, "samples": n} for c, (s, n, _) in zip(scored, points)]
    final = points[-1][2]
    return {
        "problem": problem, "seed": seed, "arm": arm, "date": date, "load_before": load, "code": suite.code_version(), "culled": stats.failures.get("culled", 0),
        "semantic_repeats": repeats,
        "minutes": minutes, "seconds": seconds, "cpu_s": cpu,
        "evaluated": stats.evaluated, "valid_share": stats.valid / max(stats.evaluated, 1),
        "samples": points[-1][1], "checkpoints": checkpoints,
        "reached_s": (final.created - start) if final and final.created else None,
        "reached_samples": final.sample if final else None, "function": final.function if final else None,
    }


def run_suite(problems: Sequence[str], seeds: Sequence[int], minutes: float, workers: int, out: Path,
              arms: Sequence[str] = ("default",), base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run each problem once per seed and arm (ARMS, side by side), in sequence; rewrite `out` after each run.

    With `base` (an earlier results file of the same minutes and workers) the
    new runs are added to its runs, so that a suite too long for one sitting
    can be measured a few runs at a time; each run records when it started
    and the machine's load then.
    """
    if base is not None:
        results = _extend(base, problems, seeds, minutes, workers, arms)
    else:
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": suite.machine(), "python": sys.version.split()[0],
            "workers": workers, "seeds": list(seeds), "arms": list(arms), "minutes": minutes,
            "load_before": list(os.getloadavg()), "complete": False, "views": {}, "headlines": {}, "baselines": {},
            "runs": [],
        }
    results["complete"] = False
    results["views"].update({p: dataclasses.asdict(VIEWS[p]) for p in problems})
    results["headlines"].update({p: dataclasses.asdict(HEADLINES[p]) for p in problems})
    started, spent = time.perf_counter(), results.get("wall_s", 0.0)
    with tempfile.TemporaryDirectory() as tmp, SandboxPool(workers, Limits(timeout_s=600)) as pool:
        for problem in problems:
            if problem not in results["baselines"]:
                results["baselines"][problem] = suite.baselines(problem, pool)
        for problem in problems:
            for seed, arm in itertools.product(seeds, arms):
                record = one_run(problem, seed, minutes, workers, Path(tmp), pool, arm)
                results["runs"].append(record)
                results["wall_s"] = spent + time.perf_counter() - started
                suite.write_atomic(out, json.dumps(results, indent=1) + "\n")
                figure = headline_value(results, record["checkpoints"][-1], problem)
                console.print(f"{problem}{_arm(record)} seed {seed}: {record['samples']} samples in {record['seconds']:.0f} s, "
                              f"{HEADLINES[problem].label} {figure}", highlight=False)
    results.update(complete=True, wall_s=spent + time.perf_counter() - started, load_after=list(os.getloadavg()))
    suite.write_atomic(out, json.dumps(results, indent=1) + "\n")
    return results


def _extend(base: Mapping[str, Any], problems: Sequence[str], seeds: Sequence[int], minutes: float, workers: int,
            arms: Sequence[str]) -> dict[str, Any]:
    """A copy of the results `base` ready to take more runs; SystemExit (one line) if they would not compare."""
    for key, value in (("minutes", minutes), ("workers", workers), ("machine", suite.machine())):
        if base.get(key) != value:
            suite.refuse(f"--add: that file's runs have {key} {base.get(key)!r}, these would have {value!r}: "
                         "runs of one suite must compare; write a new file instead")
    done = {(r["problem"], r["seed"], arm_of(r)) for r in base["runs"]}
    again = sorted(key for key in itertools.product(problems, seeds, arms) if key in done)
    if again:
        problem, seed, arm = again[0]
        suite.refuse(f"--add: that file already has {problem} seed {seed} ({arm}); leave it out of --only/--seeds")
    results = json.loads(json.dumps(base))
    results["seeds"] = sorted({*results["seeds"], *seeds})
    results["arms"] = list(dict.fromkeys([*results.get("arms", ["default"]), *arms]))
    return results


# -- rendering (from the results dict alone) ---------------------------------------------------------


def headline_value(results: Mapping[str, Any], checkpoint: Mapping[str, Any], problem: str) -> float | None:
    """The problem's headline figure for one checkpoint's program; None when it failed."""
    head, view = results["headlines"][problem], results["views"][problem]
    return suite_report.mean(suite_report.metric(checkpoint[head["split"]], view, n) for n in head["inputs"])


def _better(a: float, b: float, lower: bool) -> bool:
    return a <= b if lower else a >= b


def _f(value: float | None, digits: int) -> str:
    return "fail" if value is None else f"{value:.{digits}f}"


def arm_of(run: Mapping[str, Any]) -> str:
    """The run's arm (files written before arms had names say `"cascade": true`)."""
    return run.get("arm") or ("cascade" if run.get("cascade") else "default")


def _arm(run: Mapping[str, Any]) -> str:
    """" (ARM)" for a run of an arm other than the default, else ""."""
    arm = arm_of(run)
    return "" if arm == "default" else f" ({arm})"


def _groups(results: Mapping[str, Any]) -> list[tuple[str, str, list[Mapping[str, Any]]]]:
    """(problem, arm, its runs) in the file's order: one group per problem and arm."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for problem in results["headlines"]:
        for run in results["runs"]:
            if run["problem"] == problem:
                groups.setdefault((problem, arm_of(run)), []).append(run)
    return [(problem, arm, runs) for (problem, arm), runs in groups.items()]


def headline_table(results: Mapping[str, Any]) -> list[str]:
    minutes = results["minutes"]
    lines = [f"GP default, {minutes:g} min per run on {results['machine']} ({results['workers']} workers), "
             f"seed{'s' if len(results['seeds']) > 1 else ''} {', '.join(map(str, results['seeds']))}; mean (min-max) over seeds of the best program by train "
             "score at the end, and the minutes each run took to first reach it.", "",
             "| problem | figure | mean (min-max) | target (at 1 h, 3 seeds) | published | samples per run | reached after, min |",
             "|---|---|---|---|---|---|---|"]
    for problem, _arm_name, runs in _groups(results):
        head = results["headlines"][problem]
        lower = results["views"][problem]["lower_is_better"]
        digits = 0 if results["views"][problem]["metric"] == "size" else (2 if lower else 4)
        values = [headline_value(results, r["checkpoints"][-1], problem) for r in runs]
        ok = [v for v in values if v is not None]
        avg = statistics.fmean(ok) if len(ok) == len(values) else None
        met = "" if avg is None else (" (met)" if _better(avg, head["target"], lower) else " (not met)")
        spread = f" ({_f(min(ok), digits)}-{_f(max(ok), digits)})" if len(ok) > 1 else ""
        reached = ", ".join("?" if r["reached_s"] is None else f"{r['reached_s'] / 60:.1f}" for r in runs)
        samples = ", ".join(f"{r['samples']:,}" for r in runs)
        who, figure = head["reference"]
        lines.append(f"| `{problem}`{_arm(runs[0])} | {head['label']} | {_f(avg, digits)}{spread} | "
                     f"{'≤' if lower else '≥'} {head['target']:g}{met} | {figure:g} ({who}) | {samples} | {reached} |")
    return lines


def plot(results: Mapping[str, Any], path: Path) -> Path:
    """Per problem: the headline figure against wall time and against samples, one line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = [p for p in results["headlines"] if any(r["problem"] == p for r in results["runs"])]
    fig, axes = plt.subplots(len(problems), 2, figsize=(9.5, 3.0 * len(problems)), squeeze=False)
    for row, problem in zip(axes, problems):
        head = results["headlines"][problem]
        for run in (r for r in results["runs"] if r["problem"] == problem):
            style = "-" if arm_of(run) == "default" else "--"
            ys = [math.nan if (v := headline_value(results, c, problem)) is None else v for c in run["checkpoints"]]
            row[0].plot([c["seconds"] / 60 for c in run["checkpoints"]], ys, style, marker=".", label=f"seed {run['seed']}{_arm(run)}")
            row[1].plot([max(c["samples"], 1) for c in run["checkpoints"]], ys, style, marker=".")
        for ax, xlabel in zip(row, ("wall time, min", "samples")):
            ax.axhline(head["target"], color="tab:green", ls="--", lw=1, label="target")
            ax.axhline(head["reference"][1], color="tab:red", ls=":", lw=1.5, label=head["reference"][0])
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        row[1].set_xscale("log")
        row[0].set_ylabel(head["label"], fontsize=8)
        row[0].legend(fontsize=7, loc="best")
        row[0].set_title(problem, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(results: Mapping[str, Any], image: str | None) -> str:
    lines = headline_table(results)
    load = ", ".join(f"{x:.2f}" for x in results["load_before"][:1] + results.get("load_after", [math.nan])[:1])
    lines += ["", f"Load average before and after: {load}; suite wall time {results.get('wall_s', 0) / 3600:.1f} h"
              + ("" if results["complete"] else " (incomplete: the file holds the runs finished so far)") + "."]
    if any("date" in run for run in results["runs"]):  # measured a few runs at a time (--add): each run's own
        lines += ["", "Each run's start and load average before it: " + "; ".join(
            f"{run['problem']}{_arm(run)} seed {run['seed']} {run.get('date', '?')}, "
            + (f"{run['load_before'][0]:.2f}" if run.get("load_before") else "?")
            + (f" (code {run['code']})" if run.get("code") else "") for run in results["runs"]) + "."]
    if image:
        lines += ["", f"![headline figure against wall time and samples]({image})"]
    for run in results["runs"]:
        if run["function"]:
            lines += ["", f"<details><summary>{run['problem']}{_arm(run)} seed {run['seed']}: the best program</summary>", "",
                      "```python", run["function"].rstrip(), "```", "", "</details>"]
    return "\n".join(lines)


def render(results: Mapping[str, Any], out: Path, page: Path | None = RESULTS_PAGE,
           readme: Path | None = README, marker: str = LONG_MARKER) -> list[Path]:
    """Write the PNG and `<out stem>.md`; rewrite `page`'s section `marker` and the headline of `readme` if given."""
    image = plot(results, out.with_suffix(".png"))
    md = out.with_suffix(".md")
    md.write_text(markdown(results, image.name) + "\n")
    written = [image, md]
    reproduce = ("Reproduce: `make bench-long` (1 hour per run; `bench/suite_long.py --minutes M` for shorter runs); "
                 f"`.venv/bin/python bench/suite_long.py --from {suite_report._relative(out, suite_report.REPO)}` "
                 "re-renders from the results file.")
    if page is not None:
        section = markdown(results, suite_report._relative(image, page.parent)) + "\n\n" + reproduce
        if not replace_results_section(marker, section, page):
            raise SystemExit(f"{page} has no <!-- {marker}:start --> / <!-- {marker}:end --> markers")
        written.append(page)
    if readme is not None:
        if not replace_results_section(SUMMARY_MARKER, "\n".join(headline_table(results)), readme):
            raise SystemExit(f"{readme} has no <!-- {SUMMARY_MARKER}:start --> / <!-- {SUMMARY_MARKER}:end --> markers")
        written.append(readme)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(HEADLINES), help="run only these problems")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(suite.SEEDS), help="seeds (default 0 1 2)")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall time per run (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers per run (default 2)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=["default"],
                        help="variants to run side by side, per seed: " + "; ".join(
                            f"{name}: {settings or 'the GP default'}" for name, settings in ARMS.items()))
    parser.add_argument("--out", type=Path, help="results file (default bench/results/<date>-<machine>-long.json)")
    parser.add_argument("--add", type=Path, metavar="FILE",
                        help="add these runs to an earlier results file of the same --minutes, --workers and "
                        "machine (and rewrite it), so the suite can be measured a few runs at a time")
    parser.add_argument("--no-page", action="store_true", help="do not rewrite bench/RESULTS.md and the README")
    parser.add_argument("--section", default=LONG_MARKER,
                        help=f"the section of bench/RESULTS.md to rewrite (between <!-- NAME:start --> and "
                        f"<!-- NAME:end -->; default {LONG_MARKER}); the README's headline table only for the default")
    parser.add_argument("--from", dest="from_file", type=Path, help="re-render from this results file; run nothing")
    args = parser.parse_args()
    if args.from_file:
        results, out = suite.load_results(args.from_file), args.from_file
    else:
        if args.minutes <= 0:
            suite.refuse(f"--minutes must be > 0, got {args.minutes:g}")
        problems = args.only or list(HEADLINES)
        if args.add and args.out:
            suite.refuse("--add rewrites the file it adds to: leave out --out")
        base = suite.load_results(args.add) if args.add else None
        out = args.add or args.out or suite.RESULTS / f"{time.strftime('%Y-%m-%d')}-{suite.machine()}-long.json"
        console.print(f"{len(problems)} problems x {len(args.seeds)} seeds x {args.minutes:g} min, writing {out}")
        results = run_suite(problems, args.seeds, args.minutes, args.workers, out, args.arms, base)
    page = None if args.no_page else RESULTS_PAGE
    readme = None if args.no_page or args.section != LONG_MARKER else README
    written = render(results, out, page, readme, args.section)
    console.print("\n".join(headline_table(results)), soft_wrap=True, markup=False, highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in [out, *written]))


if __name__ == "__main__":
    main()
