"""The fine-tuning commands' user mistakes: one line on stderr, exit status 2, nothing created. About 10 s."""

from __future__ import annotations

from pathlib import Path

from conftest import evolve

FIT = '''\
import numpy as np
import evolve

INPUTS = {"train": {"a": [0.0, 1.0]}, "test": {"b": [2.0]}}


@evolve.run
def evaluate(xs: list) -> float:
    return -float(np.mean((f(np.array(xs)) - 3.0) ** 2))


@evolve.evolve
def f(x: np.ndarray) -> np.ndarray:
    return x
'''


def test_finetune_every_needs_a_model_to_train(tmp_path: Path) -> None:
    spec = tmp_path / "fit.py"
    spec.write_text(FIT)
    proc = evolve("run", str(spec), "--db", str(tmp_path / "r.db"), "--finetune-every", "10", "--budget", "8")
    assert proc.returncode == 2 and "needs a base checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.db").exists()
    proc = evolve("run", str(spec), "--db", str(tmp_path / "r.db"), "--finetune-every", "0")
    assert proc.returncode == 2 and "--finetune-every" in proc.stderr


def test_dpo_rounds_without_trl_are_refused_before_the_run(tmp_path: Path) -> None:
    spec = tmp_path / "fit.py"
    spec.write_text(FIT)
    (tmp_path / "ft.toml").write_text(f'[finetune]\nmethod = "dpo"\nbase = "{tmp_path}"\n')
    blocked = tmp_path / "no-trl"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text("import sys\nsys.modules['trl'] = None  # as if not installed\n")
    proc = evolve("run", str(spec), "--db", str(tmp_path / "r.db"), "--finetune-every", "10", "--config",
                  str(tmp_path / "ft.toml"), env={"PYTHONPATH": str(blocked)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs trl" in proc.stderr and ".[lm,dpo]" in proc.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was created


def test_finetune_command_mistakes(tmp_path: Path) -> None:
    proc = evolve("finetune", str(tmp_path / "missing.db"))
    assert proc.returncode == 2 and "no such archive" in proc.stderr and "Traceback" not in proc.stderr
    spec = tmp_path / "fit.py"
    spec.write_text(FIT)
    db = tmp_path / "gp.db"
    assert evolve("run", str(spec), "--db", str(db), "--budget", "8", "--workers", "1").returncode == 0
    proc = evolve("finetune", str(db))  # a GP run has no checkpoint to train
    assert proc.returncode == 2 and "--base" in proc.stderr and "Traceback" not in proc.stderr
    proc = evolve("finetune", str(db), "--base", str(tmp_path / "no-such-model"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "no program qualifies" in proc.stderr or "cannot load the base checkpoint" in proc.stderr
    assert not list(tmp_path.glob("gp-adapters/round_*"))
