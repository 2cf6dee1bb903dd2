"""The benchmark suite: search quality per problem, proposer and seed, plus ablations, in one results file.

    make bench                                  # the whole suite: 30 CPU-minutes, about 18 min on 2 free cores
    .venv/bin/python bench/suite.py [--only bin_packing_or ...] [--no-ablations] [--seeds 0 1 2] [--workers 2]
    .venv/bin/python bench/suite.py --from bench/results/2026-11-22-2cpu-x86_64.json   # re-render, no runs

Each run evolves one problem with one proposer and one seed up to the entry's
sample budget; afterwards the archive gives the best program found by each
checkpoint budget, and each of those is scored on the train and test splits.
Everything goes into `bench/results/<date>-<machine>.json` (written after every
run, so a crash keeps what was measured); the markdown tables, the PNG curves
and the search-quality section of bench/RESULTS.md are rendered from that file alone
(`suite_report.py`), which is what `--from` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from evolve import session
from evolve.archive import Archive, ProgramRow
from evolve.config import RunConfig
from evolve.proposers.build import LM_PROPOSERS, model_overrides
from evolve.spec import Spec, load_spec
from sandbox import Limits, SandboxPool

import suite_report

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
console = Console()


@dataclass(frozen=True)
class View:
    """How one problem's figures are read and shown: which metric, which inputs, which way is better."""

    metric: str  # a key of the spec's metrics: {input name: value}
    label: str  # what the metric is, for table captions and plot axes
    lower_is_better: bool
    plot: tuple[tuple[str, str], ...]  # (split, input name) per subplot of the curves
    log_y: bool = False
    # Published figures drawn as lines and listed as table rows: {label: {input name: value}}.
    references: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Entry:
    """One line of the suite: a problem, a proposer and config overrides, run once per seed."""

    problem: str
    samples: int  # each run's budget
    checkpoints: tuple[int, ...]  # budgets at which the best program so far is recorded and tested
    variant: str = "default"  # an ablation's name; "default" is the plain configuration
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {config part: {field: value}}
    proposer: str = "gp"

    def __post_init__(self) -> None:
        assert self.checkpoints and self.checkpoints[-1] == self.samples, "the last checkpoint is the budget"
        assert list(self.checkpoints) == sorted(set(self.checkpoints)), "checkpoints increase"


FUNSEARCH = "FunSearch (published)"
VIEWS: dict[str, View] = {
    "bin_packing_or": View(
        "excess_percent", "excess over the lower bound ceil(Σ items / capacity), %", True,
        tuple(("test", n) for n in ("OR1", "OR2", "OR3", "OR4")),
        # Romera-Paredes et al., Nature 2023, Table 1 (same bound and formula as the metric).
        references={FUNSEARCH: {"OR1": 5.30, "OR2": 4.19, "OR3": 3.11, "OR4": 2.47}},
    ),
    "bin_packing_weibull": View(
        "excess_percent", "excess over the lower bound ceil(Σ items / capacity), %", True,
        (("test", "Weibull 5k"),), references={FUNSEARCH: {"Weibull 5k": 0.68}},
    ),
    "cap_set": View(
        "size", "cap set size", False, (("train", "n8"),),
        # Largest cap sets known (n = 8: FunSearch's 512, Nature 2023).
        references={"best known": {"n1": 2, "n2": 4, "n3": 9, "n4": 20, "n5": 45, "n6": 112, "n7": 236, "n8": 512}},
        note="train is n = 8; test is n = 1..8",
    ),
    "oscillator1": View(
        "nmse", "NMSE (MSE / var y)", True, (("train", "train"), ("test", "test_id"), ("test", "test_ood")),
        log_y=True, note="constants fitted by BFGS on train; LLM-SR's own figures are not reproduced here",
    ),
}

CHECKPOINTS = (0, 250, 500, 1000, 2000)  # 0: the seed program alone
SEEDS = (0, 1, 2)
# The main table: the GP default on each problem. Language-model proposers join when
# the machine has one (`--proposers`), with the same budgets.
MAIN = tuple(Entry(p, 2000, CHECKPOINTS) for p in VIEWS)
# Ablations, on the fastest problem; each changes one thing from the default.
ABLATIONS = (
    Entry("bin_packing_or", 2000, CHECKPOINTS, "islands off (1 island, same samples)", {"islands": {"num_islands": 1}}),
    Entry("bin_packing_or", 2000, CHECKPOINTS, "cluster score: last input", {"islands": {"cluster_score": "last"}}),
    Entry("bin_packing_or", 2000, CHECKPOINTS, "1 program per prompt", {"islands": {"functions_per_prompt": 1}}),
    Entry("bin_packing_or", 2000, CHECKPOINTS, "4 programs per prompt", {"islands": {"functions_per_prompt": 4}}),
    Entry("bin_packing_or", 2000, CHECKPOINTS, "GP crossover off",
          {"gp": {"crossover_prob": 0.0, "ast_crossover_prob": 0.0}}),
)


def available_proposers(requested: Sequence[str], model: str | None) -> list[str]:
    """Return the requested proposers this machine can run; say why for each one skipped."""
    out = []
    for name in requested:
        if name == "gp":
            out.append(name)
        elif name not in LM_PROPOSERS:
            raise SystemExit(f"unknown proposer {name!r}; choose from gp, {', '.join(LM_PROPOSERS)}")
        elif not model:
            console.print(f"[yellow]skipping {name}: no --model given")
        elif name == "vllm" and not _has_cuda():
            console.print("[yellow]skipping vllm: no GPU on this machine")
        else:
            out.append(name)
    return out


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# -- running -------------------------------------------------------------------


def run_config(entry: Entry, seed: int, workers: int, model: str | None) -> RunConfig:
    """Return the configuration of one run: defaults, the entry's overrides, budget, seed, workers, model."""
    parts: dict[str, Any] = {k: dict(v) for k, v in entry.overrides.items()}
    parts.setdefault("loop", {}).update(budget=entry.samples, seed=seed)
    parts.setdefault("sandbox", {}).update(workers=workers)
    config = RunConfig(proposer=entry.proposer)
    return config.replace(**parts, **model_overrides(config.proposer, model, None))


Checkpoint = tuple[int, ProgramRow | None]  # a budget, and the best valid program proposed by then


def best_by_checkpoint(archive: Archive, checkpoints: Sequence[int]) -> list[Checkpoint]:
    """Return, per checkpoint budget, the best valid program proposed by then (the first to reach its score)."""
    return [(budget, archive.best_until(budget)) for budget in checkpoints]


def _scored(result: session.Result) -> dict[str, Any]:
    out = result.to_json()
    out.pop("split", None)
    return out


def score_checkpoints(spec: Spec, best: list[Checkpoint], pool: SandboxPool) -> list[dict[str, Any]]:
    """Give each checkpoint's best program its train figures (from the archive) and test figures (run once each)."""
    functions = {str(p.id): p.function for _, p in best if p is not None}
    test = {r.name: _scored(r) for r in session.evaluate_functions(spec, functions, "test", pool)}
    out = []
    for budget, p in best:
        train = None if p is None else {
            "score": p.score, "scores": dict(p.scores), "metrics": dict(spec.metrics("train", p.scores))}
        out.append({"samples": budget, "program_id": p.id if p else None, "train": train,
                    "test": test[str(p.id)] if p else None})
    return out


def cpu_seconds() -> float:
    """Return the CPU time of this process and its reaped descendants (sandbox workers once their pool closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(entry: Entry, seed: int, workers: int, model: str | None, tmp: Path, pool: SandboxPool) -> dict[str, Any]:
    """Evolve once and return the run's record: figures per checkpoint, the final best function, seconds."""
    config = run_config(entry, seed, workers, model)
    db = tmp / f"{entry.problem}-{len(list(tmp.iterdir()))}.db"
    archive, spec = session.new_run(entry.problem, db, config)
    started, cpu = time.perf_counter(), cpu_seconds()
    with session.pool_for(config) as run_pool:
        evolution = session.open_evolution(archive, spec, config, run_pool, fresh=True)
        evolution.run()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu  # the pool is closed: its workers count
    best = best_by_checkpoint(archive, entry.checkpoints)
    stats = evolution.stats
    archive.close()
    final = best[-1][1]
    return {
        "problem": entry.problem, "variant": entry.variant, "proposer": entry.proposer, "seed": seed,
        "samples": entry.samples, "overrides": entry.overrides, "seconds": seconds, "cpu_s": cpu,
        "evaluated": stats.evaluated, "valid_share": stats.valid / max(stats.evaluated, 1),
        "checkpoints": score_checkpoints(spec, best, pool), "function": final.function if final else None,
    }


def baselines(problem: str, pool: SandboxPool) -> dict[str, dict[str, Any]]:
    """Score the spec's seed and baselines: {name: {"train": {...}, "test": {...}}}."""
    spec = load_spec(problem)
    out: dict[str, dict[str, Any]] = {}
    for split in ("train", "test"):
        for result in session.evaluate_functions(spec, spec.baseline_functions(), split, pool):
            out.setdefault(result.name, {})[split] = _scored(result)
    return out


def machine() -> str:
    return f"{os.cpu_count()}cpu-{platform.machine()}"


def code_version(root: Path = REPO) -> str | None:
    """The commit the code was measured at ("+changes" when tracked files differ from it), for a results file.

    A tree copied out of git (to keep measuring while the checkout changes) has no .git: then
    $EVOLOOP_COMMIT, which whoever made the copy sets, or None.
    """
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("EVOLOOP_COMMIT") or None
    return head + ("+changes" if changed else "")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_suite(entries: Sequence[Entry], seeds: Sequence[int], workers: int, out: Path,
              model: str | None = None) -> dict[str, Any]:
    """Run every entry once per seed, in sequence; rewrite `out` after each run; return the results."""
    problems = sorted({e.problem for e in entries})
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "python": sys.version.split()[0],
        "workers": workers, "seeds": list(seeds), "load_before": list(os.getloadavg()), "complete": False,
        "views": {p: dataclasses.asdict(VIEWS[p]) for p in problems},
        "entries": [dataclasses.asdict(e) for e in entries], "baselines": {}, "runs": [],
    }
    started, cpu = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp, SandboxPool(workers, Limits(timeout_s=600)) as pool:
        for problem in problems:
            results["baselines"][problem] = baselines(problem, pool)
        for entry in entries:
            for seed in seeds:
                record = one_run(entry, seed, workers, model, Path(tmp), pool)
                results["runs"].append(record)
                results["wall_s"] = time.perf_counter() - started
                write_atomic(out, json.dumps(results, indent=1) + "\n")
                final = record["checkpoints"][-1]["train"]
                console.print(f"{entry.problem} ({entry.proposer}, {entry.variant}) seed {seed}: "
                              f"{record['seconds']:.0f} s ({record['cpu_s']:.0f} CPU s), "
                              f"train {final['score'] if final else None}", highlight=False)
    results.update(complete=True, wall_s=time.perf_counter() - started, cpu_s=cpu_seconds() - cpu,
                   load_after=list(os.getloadavg()))
    write_atomic(out, json.dumps(results, indent=1) + "\n")
    return results


def refuse(message: str) -> NoReturn:
    """A user's mistake: one line on stderr, exit status 2, nothing run or written."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load_results(path: Path) -> dict[str, Any]:
    """Read a results file for `--from`; a one-line exit (status 2, a user's mistake) when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = "no such results file" if not path.is_file() else f"not a results file ({exc})"
        refuse(f"{path}: {why}")


def select(entries: Sequence[Entry], only: Sequence[str] | None, proposers: Sequence[str]) -> list[Entry]:
    """Keep the entries of the chosen problems, once per available proposer (ablations: GP only)."""
    out = []
    for entry in entries:
        if only and entry.problem not in only:
            continue
        for name in proposers if entry.variant == "default" else ["gp"]:
            if name in proposers:
                out.append(dataclasses.replace(entry, proposer=name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(VIEWS), help="run only these problems")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds per entry (default 0 1 2)")
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers per run (default 2)")
    parser.add_argument("--no-ablations", action="store_true", help="run the main table only")
    parser.add_argument("--proposers", nargs="+", default=["gp"],
                        help="proposers to compare (default gp); language models need --model and, for vllm, a GPU")
    parser.add_argument("--model", help="the model for language-model proposers (a local directory or served name)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/<date>-<machine>.json)")
    parser.add_argument("--no-page", action="store_true", help="do not rewrite the search-quality section of bench/RESULTS.md")
    parser.add_argument("--from", dest="from_file", type=Path,
                        help="re-render the tables, plots and bench/RESULTS.md section from this results file; run nothing")
    args = parser.parse_args()
    if args.from_file:
        results, out = load_results(args.from_file), args.from_file
    else:
        proposers = available_proposers(args.proposers, args.model)
        entries = select(MAIN + (() if args.no_ablations else ABLATIONS), args.only, proposers)
        RESULTS.mkdir(exist_ok=True)
        out = args.out or RESULTS / f"{time.strftime('%Y-%m-%d')}-{machine()}.json"
        console.print(f"{len(entries)} entries x {len(args.seeds)} seeds, writing {out}")
        results = run_suite(entries, args.seeds, args.workers, out, args.model)
    written = suite_report.render(results, out, page=None if args.no_page else suite_report.RESULTS_PAGE)
    console.print(suite_report.markdown(results), soft_wrap=True, markup=False, highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in [out, *written]))


if __name__ == "__main__":
    main()
