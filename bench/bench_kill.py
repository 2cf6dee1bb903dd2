"""`kill -9` at random moments, then resume: is every committed program still there, and does the run go on?

    python bench/bench_kill.py                 # 20 trials, about 3 minutes on 2 cores
    python bench/bench_kill.py --trials 5      # a quick look

Each trial starts `evolve run bin_packing_or` through the real CLI (2 sandbox
workers, an unbounded budget), waits a random time (uniform over 0-1.5 s for
half the trials, so that kills land around the first commit: while the
interpreter starts, the file is created or the seed evaluated; over 1.5-6 s
for the other half, mid-run), and kills the loop's whole process group with
SIGKILL. It then records every committed program (id, hash, score, function)
and continues the run on the same file: `evolve resume DB --budget S+40`, or,
when the kill left no run record, `evolve run` of the same spec over the same
file. Every fourth trial kills the resume once more and resumes again. A trial
passes when each program committed at the kill is unchanged afterwards,
SQLite's integrity check is "ok", the run finished its budget and no process
of the trial is left.

Prints a table, writes bench/results/DATE-HOST-kill.json and replaces the
kill table of bench/RESULTS.md and its one-line summary in the README (`--report FILE` only
regenerates them from a results file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import replace_results_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROBLEM = "bin_packing_or"
EXTRA = 40  # samples each resume adds


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=600)


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "evolve.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def kill_after(proc: subprocess.Popen[bytes], delay_s: float) -> None:
    time.sleep(delay_s)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the loop and its sandbox workers
    except ProcessLookupError:
        pass
    proc.wait()


def committed(db: Path) -> dict[int, tuple[str, float | None, str]]:
    """Every program in the file: id -> (hash, score, function); {} when the file has no tables (yet)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {pid: (h, s, f) for pid, h, s, f in conn.execute("SELECT id, hash, score, function FROM programs")}
    except sqlite3.OperationalError:
        return {}


def samples(db: Path) -> int | None:
    proc = cli("status", str(db), "--json")
    return json.loads(proc.stdout)["samples"] if proc.returncode == 0 else None


def survivors(session_ids: list[int]) -> list[str]:
    """Processes still in the trial's process groups (none should be)."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) in session_ids:
                left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return left


def carry_on(db: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Continue the run on `db` as a user would: resume it, or start it in place when it holds no run yet."""
    done = samples(db)
    if done is None:  # killed before the run record's commit: start it again over the same file
        return "run", cli("run", PROBLEM, "--db", str(db), "--budget", str(EXTRA), "--workers", "2")
    return "resume", cli("resume", str(db), "--budget", str(done + EXTRA), "--workers", "2")


def trial(index: int, rng: random.Random, workdir: Path) -> dict[str, Any]:
    db = workdir / f"kill-{index}.db"
    delay = rng.uniform(0.0, 1.5) if index % 2 == 0 else rng.uniform(1.5, 6.0)  # half of them in the first moments
    groups = []
    proc = start("run", PROBLEM, "--db", str(db), "--budget", "100000", "--workers", "2", "--seed", str(index))
    groups.append(proc.pid)
    kill_after(proc, delay)
    at_kill = committed(db)
    samples_at_kill = samples(db)
    twice = index % 4 == 3
    if twice and samples_at_kill is not None:  # kill the resume as well, a moment after it starts
        again = start("resume", str(db), "--budget", str(samples_at_kill + EXTRA), "--workers", "2")
        groups.append(again.pid)
        kill_after(again, rng.uniform(0.5, 3.0))
    how, finished = carry_on(db)
    after = committed(db)
    lost = [pid for pid, row in at_kill.items() if after.get(pid) != row]
    with sqlite3.connect(db) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    status = json.loads(cli("status", str(db), "--json").stdout or "{}")
    left = survivors(groups)
    ok = finished.returncode == 0 and not lost and integrity == "ok" and status.get("state") == "finished" and not left
    return {
        "trial": index, "kill_after_s": round(delay, 3), "killed_twice": twice and samples_at_kill is not None,
        "programs_at_kill": len(at_kill), "samples_at_kill": samples_at_kill, "continued_with": how,
        "exit": finished.returncode, "error": finished.stderr.strip().splitlines()[-1:] if finished.returncode else [],
        "programs_after": len(after), "lost": len(lost), "integrity": integrity, "state": status.get("state"),
        "samples_after": status.get("samples"), "processes_left": left, "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--report", type=Path, help="only regenerate the tables from this results file")
    args = parser.parse_args()
    if args.report:
        publish(json.loads(args.report.read_text()))
        return
    rng = random.Random(args.seed)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="evoloop-kill-") as tmp:
        for i in range(args.trials):
            row = trial(i, rng, Path(tmp))
            rows.append(row)
            print(f"trial {i:2d}: kill at {row['kill_after_s']:.2f}s, {row['programs_at_kill']:4d} programs committed, "
                  f"{row['continued_with']} -> {'ok' if row['ok'] else 'FAILED ' + str(row)}", flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"), "host": f"{os.cpu_count()}cpu-{platform.machine()}", "problem": PROBLEM,
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "trials": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['date']}-{result['host']}-kill.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    publish(result)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


def publish(result: dict[str, Any]) -> None:
    """Print the table and replace the kill table of bench/RESULTS.md and its one-line summary in the README (`--report FILE` only
regenerates them from a results file)."""
    table = report(result)
    print(table)
    replace_results_section("kill", table)
    replace_results_section("kill-summary", summary(result), page=ROOT / "README.md")


def summary(result: dict[str, Any]) -> str:
    """The README's one sentence, from the same results: the table itself lives in bench/RESULTS.md."""
    rows = result["trials"]
    early = sum(r["samples_at_kill"] is None or r["programs_at_kill"] == 0 for r in rows)
    return (f"{sum(r['ok'] for r in rows)} of {len(rows)} runs of `{result['problem']}` killed with `kill -9` at random "
            f"moments ({early} before their first program, {sum(r['killed_twice'] for r in rows)} killed twice) "
            f"continued in place: {sum(r['programs_at_kill'] for r in rows):,} programs committed at the kills, "
            f"{sum(r['lost'] for r in rows)} lost ({result['host']}, {result['date']}; "
            "[table](bench/RESULTS.md#kill--9-at-random-moments)).")


def report(result: dict[str, Any]) -> str:
    rows = result["trials"]
    early = [r for r in rows if r["samples_at_kill"] is None or r["programs_at_kill"] == 0]
    lines = [
        f"`{result['problem']}`, {result['host']}, load average {result['load_before']} before / {result['load_after']} "
        f"after; `python bench/bench_kill.py` ({result['date']}).",
        "",
        "| trials | passed | killed before the first program | killed twice | programs committed at the kills | lost |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(rows)} | {sum(r['ok'] for r in rows)} | {len(early)} | {sum(r['killed_twice'] for r in rows)} | "
        f"{sum(r['programs_at_kill'] for r in rows)} | {sum(r['lost'] for r in rows)} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
