"""A real language model in the loop on CPU: GP vs llama.cpp (Gemma 3 270M) vs a mix, and one LoRA round's evidence.

    python bench/bench_real_lm.py                    # about 25 minutes on 2 cores
    python bench/bench_real_lm.py --samples 24 --seeds 1 --round-budget 0   # a quick look

On `bin_packing_or`, each arm runs through the real CLI (`evolve run`, then
`evolve status --json` and `evolve best --split test --json`), so what is
measured is what a user gets:

- equal samples: gp, llamacpp and llamacpp:0.5,gp:0.5 with the same budget,
  per seed;
- equal wall time: gp again, given the llamacpp run's wall time (`--time`);
- a LoRA round: llamacpp with `--finetune-every K`, which trains a PEFT LoRA
  on the run's best programs (from the transformers checkpoint made once
  from the GGUF file), converts it for llama.cpp and samples from it while
  a control share of prompts stays with the base model. Reported: adapter
  arm vs base arm over the same samples (programs, valid share with a 95 %
  bootstrap interval, mean and best score) and the round's training time.

Prints a table, writes bench/results/DATE-HOST-real_lm.json and replaces the
real-lm sections of bench/RESULTS.md and the README (`--report FILE` only
regenerates them from a results file). Say how loaded the machine was: the
load average before and after is in the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evolve.archive import Archive

from common import replace_results_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROBLEM = "bin_packing_or"
MIX = "llamacpp:0.5,gp:0.5"


def evolve(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def run_arm(proposer: str, seed: int, samples: int, workdir: Path, model: str, time_s: float | None = None,
            extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run one arm through the CLI and return its figures."""
    tag = proposer.replace(":", "").replace(",", "+").replace(".", "")
    db = workdir / f"{tag}-s{seed}-{samples}{'-t' if time_s else ''}{'-ft' if extra else ''}.db"
    args = ["run", PROBLEM, "--db", str(db), "--proposer", proposer, "--seed", str(seed), "--workers", "1",
            "--budget", str(samples if time_s is None else 10**6)]
    if "llamacpp" in proposer:
        args += ["--model", model]
    if time_s is not None:
        args += ["--time", f"{time_s:.0f}s"]
    started = time.monotonic()
    proc = evolve(*args, *extra)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{proposer} seed {seed}: evolve run failed: {proc.stderr.strip().splitlines()[-1:]}")
    status = json.loads(evolve("status", str(db), "--json").stdout)
    best = json.loads(evolve("best", str(db), "--split", "test", "--json").stdout)
    programs = best.get("programs") or [best]
    top = programs[0] if programs else {}
    samples_done = status["samples"]
    return {
        "proposer": proposer, "seed": seed, "budget": samples, "time_limit_s": time_s, "db": str(db),
        "samples": samples_done, "evaluated": status["evaluated"], "valid": status["valid"],
        "valid_share": status["valid_share"], "duplicates": status["duplicates"], "rejected": status["rejected"],
        "failures": status["failures"], "best_train": status["score"], "best_test": top.get("score"),
        "best_test_metrics": top.get("metrics", {}), "tokens": status["tokens"], "loop_s": status["elapsed_s"],
        "wall_s": wall, "tokens_per_s": status["tokens"] / status["elapsed_s"] if status["elapsed_s"] else 0.0,
        "s_per_sample": status["elapsed_s"] / samples_done if samples_done else None,
        "adapters": status.get("adapters", []), "by_proposer": status.get("by_proposer", []),
    }


def bootstrap(values: list[float], rng: np.random.Generator, reps: int = 2000) -> tuple[float, float] | None:
    """Return the 95 % bootstrap interval of the mean of `values` (None for fewer than 2)."""
    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), (reps, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def arm_programs(db: str, tuned: bool, lo: int | None) -> list[float | None]:
    """Return the scores (None: failed) of llamacpp programs from sample `lo` on: adapter arm (any round) or base arm."""
    archive = Archive.open(Path(db), readonly=True)
    rows = [p for p in archive.written_by("llamacpp") if bool(p.adapter) == tuned and lo is not None and p.sample >= lo]
    archive.close()
    return [p.score for p in rows]


def round_evidence(run: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Compare the adapter arm with the base arm over the samples after the first switch."""
    archive = Archive.open(Path(run["db"]), readonly=True)
    rounds = archive.adapters()
    archive.close()
    if not rounds:
        return {"rounds": 0}
    first = rounds[0]
    out: dict[str, Any] = {"rounds": len(rounds), "train_s": first.duration_s, "examples": first.examples,
                           "steps": first.steps, "base_loss": first.base_loss, "adapter_loss": first.adapter_loss,
                           "switched_at": first.finished_sample}
    for arm, tuned in (("adapter", True), ("base", False)):
        scores = arm_programs(run["db"], tuned, first.finished_sample)
        valid = [s for s in scores if s is not None]
        out[arm] = {
            "programs": len(scores), "valid_share": len(valid) / len(scores) if scores else None,
            "valid_share_ci": bootstrap([float(s is not None) for s in scores], rng),
            "mean_score": statistics.fmean(valid) if valid else None,
            "mean_score_ci": bootstrap(valid, rng), "best_score": max(valid) if valid else None,
        }
    return out


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple | list) and len(value) == 2:
        return f"[{value[0]:.2f}, {value[1]:.2f}]"
    return format(value, spec) if isinstance(value, float) else str(value)


def tables(runs: list[dict[str, Any]], evidence: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    lines = [f"`bin_packing_or`, {meta['cpus']} cores, 1 sandbox worker, load average {meta['load_before']:.1f} before "
             f"/ {meta['load_after']:.1f} after; model {meta['model']}; `python bench/bench_real_lm.py` "
             f"({meta['date']}). Medians over seeds {meta['seeds']}.", "",
             "| arm | samples | valid | rejected | duplicates | best train | best test (OR1-4 excess) | tokens/s "
             "| s/sample |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        key = r["proposer"] + (" (at llamacpp's wall time)" if r["time_limit_s"] else "")
        groups.setdefault(key, []).append(r)
    for key, rs in groups.items():
        def med(k: str) -> Any:
            vals = [r[k] for r in rs if r[k] is not None]
            return statistics.median(vals) if vals else None
        rejected = sum(sum(r["rejected"].values()) for r in rs) / len(rs)
        reasons = {}
        for r in rs:
            for k, v in r["rejected"].items():
                reasons[k] = reasons.get(k, 0) + v
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:2])
        excess = [statistics.fmean(r["best_test_metrics"]["excess_percent"].values()) for r in rs
                  if r["best_test_metrics"].get("excess_percent")]
        test = f"{statistics.median(excess):.2f} %" if excess else fmt(med("best_test"))
        lines.append(f"| {key} | {fmt(med('samples'))} | {fmt(med('valid_share'), '.0%')} | {rejected:.1f}"
                     f"{f' ({why})' if why else ''} | {fmt(med('duplicates'))} | {fmt(med('best_train'), '.4g')} | {test} "
                     f"| {fmt(med('tokens_per_s'), '.1f')} | {fmt(med('s_per_sample'), '.2f')} |")
    if evidence and evidence.get("rounds"):
        e = evidence
        lines += ["", f"LoRA rounds: {e['rounds']} finished; round 1: {e['examples']} examples, {e['steps']} steps, "
                  f"trained in {e['train_s']:.0f} s (loss on its data {fmt(e['base_loss'])} → {fmt(e['adapter_loss'])}). "
                  f"Programs from sample {e['switched_at']} (the first switch) on, adapter arm (any round's adapter) vs "
                  "the base model's control arm:", "",
                  "| arm | programs | valid share (95 % CI) | mean score (95 % CI) | best score |", "| --- | --- | --- | --- | --- |"]
        for arm in ("adapter", "base"):
            a = e[arm]
            lines.append(f"| {arm} | {a['programs']} | {fmt(a['valid_share'], '.0%')} {fmt(a['valid_share_ci'])} | "
                         f"{fmt(a['mean_score'], '.4g')} {fmt(a['mean_score_ci'])} | {fmt(a['best_score'], '.4g')} |")
    elif evidence is not None:
        lines += ["", "No LoRA round finished within the run's budget."]
    return "\n".join(lines)


def summary(runs: list[dict[str, Any]], evidence: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    """The README's short version: a paragraph and one table, medians over seeds, from the same results."""
    def arm(proposer: str, timed: bool = False) -> dict[str, Any]:
        rs = [r for r in runs if r["proposer"] == proposer and bool(r["time_limit_s"]) == timed]
        def med(key: str) -> Any:
            vals = [r[key] for r in rs if r[key] is not None]
            return statistics.median(vals) if vals else None
        excess = [statistics.fmean(r["best_test_metrics"]["excess_percent"].values()) for r in rs
                  if r["best_test_metrics"].get("excess_percent")]
        return {"samples": med("samples"), "valid": med("valid_share"), "s": med("s_per_sample"),
                "excess": statistics.median(excess) if excess else None}

    def pct(v: Any, digits: int = 2) -> str:
        return "-" if v is None else f"{v:.{digits}f} %"

    gp, llm, mix, timed = arm("gp"), arm("llamacpp"), arm(MIX), arm("gp", timed=True)
    text = (f"On `bin_packing_or` ({meta['cpus']} cores, load average {meta['load_before']:.1f} before / "
            f"{meta['load_after']:.1f} after, medians over seeds {meta['seeds']}, {meta['date']}), {meta['model']} "
            f"through llama.cpp writes {llm['valid']:.0%} valid programs at {llm['s']:.2f} s per sample and "
            f"reached {pct(llm['excess'])} excess on OR1-OR4 in {meta['samples']} samples (GP: {pct(gp['excess'])}); "
            f"GP, given the same wall time, ran "
            f"{timed['samples']:,.0f} samples to {pct(timed['excess'])}.")
    if evidence and evidence.get("rounds"):
        a, b = evidence["adapter"], evidence["base"]
        overlap = a["valid_share_ci"][0] <= b["valid_share_ci"][1] and b["valid_share_ci"][0] <= a["valid_share_ci"][1]
        text += (f" One LoRA round ({evidence['examples']} examples, {evidence['steps']} steps, "
                 f"{evidence['train_s']:.0f} s): {a['valid_share']:.0%} valid for the adapter arm vs "
                 f"{b['valid_share']:.0%} for the base arm, 95 % intervals "
                 f"{'overlapping' if overlap else 'apart'}.")
    rows = [("`gp`", gp), (f"`llamacpp` ({meta['model']})", llm), (f"`{MIX}`", mix), ("`gp` at llamacpp's wall time", timed)]
    lines = [text, "", "| set-up | samples | valid | best test excess | s/sample |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {name} | {fmt(r['samples'], ',.0f')} | {fmt(r['valid'], '.0%')} | {pct(r['excess'])} | "
              f"{fmt(r['s'], '.2f')} |" for name, r in rows]
    return "\n".join(lines)


def publish(runs: list[dict[str, Any]], evidence: dict[str, Any] | None, meta: dict[str, Any]) -> None:
    """Print the tables and replace the real-lm sections of bench/RESULTS.md and the README."""
    table = tables(runs, evidence, meta)
    print(table)
    if replace_results_section("real-lm", table):
        print("replaced the real-lm section of bench/RESULTS.md")
    if replace_results_section("real-lm-summary", summary(runs, evidence, meta), page=ROOT / "README.md"):
        print("replaced the real-lm summary of README.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=48, help="budget of each equal-samples arm")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--round-budget", type=int, default=320, help="budget of the LoRA-round run (0: skip it)")
    parser.add_argument("--round-every", type=int, default=24, help="--finetune-every of that run")
    parser.add_argument("--arms-from", type=Path, help="reuse the equal-samples/equal-time runs of this results file")
    parser.add_argument("--report", type=Path, help="only regenerate the tables from this results file")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        publish(saved["runs"], saved["round"], saved["meta"])
        return
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    runs: list[dict[str, Any]] = []
    evidence = None
    with tempfile.TemporaryDirectory(prefix="bench-real-lm-") as tmp:
        work = Path(tmp)
        if args.arms_from:
            earlier = json.loads(args.arms_from.read_text())
            runs = [r for r in earlier["runs"] if "LoRA" not in r["proposer"]]
            load_before = earlier["meta"]["load_before"]
        for seed in range(0 if args.arms_from else args.seeds):
            for proposer in ("gp", "llamacpp", MIX):
                runs.append(run_arm(proposer, seed, args.samples, work, args.model))
                print(f"{proposer} seed {seed}: done in {runs[-1]['wall_s']:.0f} s", flush=True)
            llm = next(r for r in runs if r["proposer"] == "llamacpp" and r["seed"] == seed and not r["time_limit_s"])
            runs.append(run_arm("gp", seed, args.samples, work, args.model, time_s=llm["loop_s"]))
        if args.round_budget:
            config = work / "round.toml"
            # A 270M model rarely beats its parents: train on every valid program of the top share instead.
            config.write_text("[finetune]\nsteps = 4\nmax_length = 384\nbatch_size = 2\nthreads = 1\n"
                              "top_share = 1.0\nimproving_only = false\ncontrol_share = 0.5\nwait_at_end_s = 0\n")
            ft = run_arm("llamacpp", 0, args.round_budget, work, args.model,
                         extra=("--finetune-every", str(args.round_every), "--config", str(config)))
            runs.append({**ft, "proposer": "llamacpp + LoRA rounds"})
            evidence = round_evidence(ft, rng)
        meta = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "host": platform.machine(),
                "load_before": load_before, "load_after": os.getloadavg()[0], "model": args.model,
                "seeds": list(range(args.seeds)), "samples": args.samples}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{meta['date']}-{os.cpu_count()}cpu-{meta['host']}-real_lm.json"
    out.write_text(json.dumps({"meta": meta, "runs": runs, "round": evidence}, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    publish(runs, evidence, meta)


if __name__ == "__main__":
    main()
