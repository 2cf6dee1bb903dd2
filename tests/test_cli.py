"""The `evolve` CLI end to end: real archives, real sandbox workers, real GP."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import DATA, evolve, evolve_json

# FunSearch, Nature 2023, Table 1: excess bins over the L1 bound, in percent.
PUBLISHED = {
    "bin_packing_or": {"first_fit": [6.42, 6.45, 5.74, 5.23], "best_fit": [5.81, 6.06, 5.37, 4.94]},
    "bin_packing_weibull": {"first_fit": [4.23], "best_fit": [3.98]},
}


@pytest.mark.parametrize("problem", sorted(PUBLISHED))
def test_baselines_reproduce_published_figures(problem: str) -> None:
    out = evolve_json("baseline", problem)
    assert out["split"] == "test"
    for name, figures in PUBLISHED[problem].items():
        excess = out["baselines"][name]["metrics"]["excess_percent"]
        assert [round(v, 2) for v in excess.values()] == figures, name
    # The seed is best fit: same figures.
    assert out["baselines"]["seed"]["scores"] == out["baselines"]["best_fit"]["scores"]


def test_run_status_best_export_eval(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "run.db"
    proc = evolve("run", "bin_packing_or", "--db", str(db), "--budget", "120", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    assert "run finished: 120 samples" in proc.stdout

    status = evolve_json("status", str(db))
    assert status["samples"] == 120 and status["state"] == "finished"
    assert set(status) >= {"score", "scores", "metrics", "islands", "valid_share"}
    assert list(status["scores"]) == ["train_0", "train_1", "train_2", "train_3"]
    assert set(status["metrics"]["excess_percent"]) == set(status["scores"])
    with sqlite3.connect(db) as conn:
        best_row = conn.execute("SELECT id, score FROM programs WHERE score IS NOT NULL ORDER BY score DESC, id LIMIT 1").fetchone()
        count = conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
    assert (status["best_id"], status["score"]) == best_row
    assert count == status["evaluated"]

    best = evolve_json("best", str(db), "--split", "test")
    assert best["id"] == best_row[0] and best["split"] == "test"
    assert list(best["scores"]) == ["OR1", "OR2", "OR3", "OR4"]
    assert all(0 < v < 10 for v in best["metrics"]["excess_percent"].values())

    out_dir = tmp_path / "export"
    assert evolve("export", str(db), str(out_dir), "--top", "3").returncode == 0
    index = json.loads((out_dir / "index.json").read_text())
    assert index["programs"][0]["id"] == best_row[0]
    exported = out_dir / index["programs"][0]["file"]
    # The exported file is a complete program: evaluating its function gives the archived train score.
    again = evolve_json("eval", "bin_packing_or", str(exported))
    assert again["score"] == pytest.approx(best_row[1])


def test_funsearch_spec_runs_unchanged(tmp_path: Path, small_config: Path) -> None:
    spec, inputs = DATA / "funsearch_bin_packing.py", DATA / "funsearch_inputs.json"
    db = tmp_path / "fs.db"
    proc = evolve("run", str(spec), "--inputs", str(inputs), "--db", str(db), "--budget", "80", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    status = evolve_json("status", str(db))
    assert status["samples"] == 80 and status["valid"] > 10
    seed_score = evolve_json("eval", str(spec), str(spec), "--inputs", str(inputs))["score"]
    assert status["score"] > seed_score  # FunSearch's seed opens a bin per item; GP finds better quickly


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "no_such_problem"], "no such spec file or built-in problem"),
        (["status", "missing.db"], "no such archive"),
        (["best", "README.md"], "is not an evoloop archive"),
        (["run", "bin_packing_or", "--budget", "0"], "loop.budget must be >= 1"),
        (["run", "bin_packing_or", "--proposer", "nope"], "unknown proposer 'nope'"),
        (["run", "bin_packing_or", "--time", "soon"], "cannot read the duration"),
        (["eval", "bin_packing_or", "prose.txt"], "no function found"),
        (["eval", "bin_packing_or", "missing.py"], "cannot read"),
    ],
)
def test_user_errors_are_one_line_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    (tmp_path / "prose.txt").write_text("This file holds no code, only words.\n")
    proc = evolve(*[str(tmp_path / a) if a.endswith((".db", ".txt", ".py")) else a for a in args])
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_refuses_a_file_that_is_not_an_archive(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_text("my notes\n")
    proc = evolve("run", "bin_packing_or", "--db", str(db))
    assert proc.returncode == 2 and "already exists and is not an evoloop archive" in proc.stderr
    assert db.read_text() == "my notes\n"


def test_every_command_is_documented() -> None:
    from evolve.cli import main

    for name, command in main.commands.items():
        assert command.help and len(command.help.strip()) > 20, name
        proc = evolve(name, "--help")
        assert proc.returncode == 0 and "Usage:" in proc.stdout, name


def test_problems_lists_builtins() -> None:
    proc = evolve("problems")
    assert proc.returncode == 0
    assert "bin_packing_or" in proc.stdout and "bin_packing_weibull" in proc.stdout


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path, small_config: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    db = tmp_path / "c.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve.cli", "run", "bin_packing_or", "--db", str(db), "--budget", "100000",
         "--config", str(small_config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (db.exists() and evolve_json_quiet(db).get("samples", 0) >= 40):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the loop and its workers
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "run stopped" in out and f"evolve resume {db}" in out.replace("\n", "")
    status = evolve_json("status", str(db))
    assert status["state"] == "stopped" and status["samples"] < 100000


def evolve_json_quiet(db: Path) -> dict:
    proc = evolve("status", str(db), "--json")
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def test_eval_names_the_failing_line_of_the_file_and_refuses_a_file_without_the_function(tmp_path: Path) -> None:
    candidate = tmp_path / "cand.py"
    candidate.write_text("import numpy as np\n\n\ndef priority(item, bins):\n    import glob\n    table = {}\n"
                         "    return table['missing']\n")
    proc = evolve("eval", "bin_packing_or", str(candidate))
    assert proc.returncode == 1, proc.stderr  # the candidate failed: 1, not the 2 of a user error
    assert "KeyError: 'missing' (line 7)" in proc.stdout + proc.stderr, proc.stdout  # line 7 of cand.py
    other = tmp_path / "other.py"
    other.write_text("def equation(x, v, params):\n    return x\n\ndef helper():\n    return 1\n")
    refused = evolve("eval", "bin_packing_or", str(other))
    assert refused.returncode == 2
    assert "defines no function `priority` (found: equation, helper)" in refused.stderr, refused.stderr
    twice = tmp_path / "twice.py"
    twice.write_text("def priority(item, bins):\n    return bins\n\n\ndef priority(item, bins):\n    return -bins\n")
    refused = evolve("eval", "bin_packing_or", str(twice))
    assert refused.returncode == 2 and "defines `priority` twice (lines 1 and 5)" in refused.stderr, refused.stderr

