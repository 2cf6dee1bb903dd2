"""LoRA rounds during a real run: `evolve run --finetune-every N` with the transformers proposer on a tiny model.

A tiny random GPT-2 writes no valid program, so the run mixes it with GP
(`transformers:0.5,gp:0.5`): GP's improvements are the training data, the
transformers proposer trains on them and switches to each adapter. About
40-70 s on 2 busy cores (two rounds, each a child process that imports torch).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="needs the lm extra (make test installs it)")
pytest.importorskip("peft")

from conftest import ROOT, evolve, evolve_json  # noqa: E402
from evolve.archive import Archive, ArchiveError  # noqa: E402
from evolve.recorded import recorded_config, recorded_spec  # noqa: E402
from tiny_lm import teach, tiny_model  # noqa: E402

FIT = '''\
"""Fit y = x * x + 3 at a few points."""
import numpy as np
import evolve

GP_PRIMITIVES = {
    "args": {"x": "array"},
    "returns": "array",
    "operators": ["add", "sub", "mul", "neg", "square"],
    "constants": [1.0, 3.0],
}

INPUTS = {"train": {"a": [0.0, 1.0, 2.0], "b": [3.0, 4.0, 5.0]}, "test": {"c": [6.0, 7.0]}}


@evolve.run
def evaluate(xs: list) -> float:
    x = np.array(xs, dtype=float)
    return -float(np.mean((f(x) - (x * x + 3.0)) ** 2))


@evolve.evolve
def f(x: np.ndarray) -> np.ndarray:
    """Approximate the target curve."""
    return x
'''
CONFIG = """\
[islands]
num_islands = 2
[loop]
prompts_per_batch = 4
samples_per_prompt = 2
[sandbox]
timeout_s = 10.0
[sampling]
max_tokens = 24
[finetune]
steps = 8
batch_size = 4
learning_rate = 5e-3
top_share = 0.5
control_share = 0.25
"""
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # torch's thread pool spins on a shared 2-core machine: 30x slower generation


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model (random weights), then taught for a few seconds to answer FIT's prompts with `x * x + c` (c from 0.00 to 3.99).

    So the transformers proposer alone writes valid programs, some better
    than their parents (c near 3), that the rounds then select and train on.
    """
    import random

    import torch

    from evolve.prompt import build_prompt, render, spec_preface
    from evolve.spec import load_spec

    torch.set_num_threads(1)
    directory = tiny_model(tmp_path_factory.mktemp("tiny"))
    spec_file = directory.parent / "fit.py"
    spec_file.write_text(FIT)
    spec = load_spec(spec_file)
    preface, seed = spec_preface(spec), spec.function
    draw = random.Random(0)

    def body() -> str:
        return f"    return x * x + {draw.randint(0, 3)}.{draw.randint(0, 9)}{draw.randint(0, 9)}\n"  # 400 programs

    def variant() -> str:
        return seed.replace("    return x\n", body())

    prompts = [render(build_prompt(0, (1,), (seed,), (-9.0,), spec.function_name, preface), "completion").text]
    prompts += [render(build_prompt(0, (1, 2), (seed, variant()), (-9.0, -1.0), spec.function_name, preface),
                       "completion").text for _ in range(4)]
    return teach(directory, [(draw.choice(prompts), body()) for _ in range(128)])


def completion_loss(model: Any, tokenizer: Any, records: list[dict[str, str]]) -> float:
    """Mean per-token loss of each record's completion (+ EOS) given its prompt, computed here independently."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for r in records:
            prompt = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
            completion = tokenizer(r["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids = torch.tensor([prompt + completion])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]  # the positions that predict the completion
            total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(completion), reduction="sum"))
            count += len(completion)
    return total / count


@pytest.fixture(scope="module")
def run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run until two rounds are recorded, then Ctrl-C; return the archive and the run's log."""
    tmp_path = tmp_path_factory.mktemp("rounds")
    spec, config, db, log = tmp_path / "fit.py", tmp_path / "ft.toml", tmp_path / "run.db", tmp_path / "run.log"
    spec.write_text(FIT)
    config.write_text(CONFIG)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "evolve.cli", "-v", "run", str(spec), "--proposer", "transformers",
             "--model", str(model_dir), "--db", str(db), "--budget", "100000", "--workers", "2", "--config", str(config),
             "--finetune-every", "8"],
            cwd=ROOT, env={**os.environ, **ONE_THREAD}, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline and proc.poll() is None and _rounds(db) < 2:
                time.sleep(0.5)
            proc.send_signal(signal.SIGINT)  # Ctrl-C: stops after the batch, stops a round in flight
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    return db, log.read_text()


def test_two_rounds_train_while_the_run_goes_on(run: tuple[Path, str], model_dir: Path) -> None:
    db, text = run
    archive = Archive.open(db, readonly=True)
    rows = archive.adapters()
    kinds = [e.kind for e in archive.events()]
    archive.close()
    assert len(rows) >= 2, text[-3000:]
    assert "finetune-failed" not in kinds and kinds[-1] == "stop"
    assert rows[1].parent == rows[0].path  # round 2 continues round 1 on the cumulative data
    assert rows[1].examples is not None and rows[0].examples is not None and rows[1].examples >= rows[0].examples

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for row in rows:
        # The run's sample counter went on while the round trained in its own process.
        assert row.finished_sample is not None and row.started_sample is not None
        assert row.finished_sample > row.started_sample, row
        assert len(row.loss_curve) == row.steps == 8 and row.duration_s is not None and row.duration_s > 0
        assert f"switched to the adapter {row.path}" in text  # the running proposer loaded it
        path = Path(row.path or "")
        assert {"adapter_config.json", "adapter_model.safetensors", "meta.json", "train.jsonl"} <= {p.name for p in path.iterdir()}
        adapter_config = json.loads((path / "adapter_config.json").read_text())
        assert adapter_config["modules_to_save"] is None  # nothing but LoRA weights: vLLM serves it
        layers = {name.rsplit(".", 1)[-1] for name in adapter_config["target_modules"]}
        assert layers == {"c_attn", "c_proj", "c_fc"}  # every linear layer of the blocks ("all-linear"), not lm_head
        records = [json.loads(line) for line in (path / "train.jsonl").read_text().splitlines()]
        assert len(records) == row.examples > 0
        base = completion_loss(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, records)
        tuned = completion_loss(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), path), tokenizer, records)
        assert tuned < base, (row.round, base, tuned)
        assert row.base_loss == pytest.approx(base, rel=1e-3) and row.adapter_loss == pytest.approx(tuned, rel=1e-3)

    status = evolve_json("status", str(db))
    evidence = status["adapters"]
    assert [e["round"] for e in evidence] == [0] + [r.round for r in rows]
    assert evidence[0]["base_programs"] > 0  # before any round: the base model's own programs
    # (After a round, its adapter's figures stand next to the control share's; here both mostly rewrite
    # programs the run already has, which are duplicates, not new programs: tests/test_finetune_registry.py
    # checks those figures on a crafted archive.)
    assert "adapters" in evolve("status", str(db)).stdout


def _rounds(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        archive = Archive.open(db, readonly=True)
    except ArchiveError:  # the file exists before its tables do
        return 0
    try:
        return len(archive.adapters())
    except sqlite3.OperationalError:
        return 0
    finally:
        archive.close()


def test_export_resume_and_a_standalone_round(run: tuple[Path, str], model_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evolve import session
    from finetune.rounds import finetune_now

    db, _ = run
    proc = evolve("export", str(db), str(tmp_path / "out"), "--adapters")
    assert proc.returncode == 0, proc.stderr
    rows = Archive.open(db, readonly=True).adapters()
    for row in rows:
        exported = tmp_path / "out" / "adapters" / f"round_{row.round}"
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), exported)  # loads as it is
        assert tuned.active_adapter == "default"
    # Resume: the proposer starts from the latest adapter (loaded with the model on its first batch).
    archive = Archive.open(db)
    evolution = session.open_evolution(archive, recorded_spec(archive), recorded_config(archive), pool=None,  # type: ignore[arg-type]
                                       fresh=False)
    assert evolution.proposer.adapter == rows[-1].path
    archive.close()
    # A live run holds the archive: `evolve finetune` refuses in one line; once stopped, it trains and records a round.
    with session.run_lock(db):
        refused = evolve("finetune", str(db))
    assert refused.returncode == 2 and "being evolved" in refused.stderr and "Traceback" not in refused.stderr
    meta = finetune_now(db, out=tmp_path / "manual")
    assert meta["round"] == rows[-1].round + 1 and meta["parent"] == rows[-1].path
    assert meta["adapter_loss"] < meta["base_loss"] and (tmp_path / "manual" / "adapter_config.json").is_file()
    latest = Archive.open(db, readonly=True).latest_adapter()
    assert latest is not None and latest.path == str((tmp_path / "manual").resolve())


def test_resume_takes_up_the_round_a_killed_loop_left_behind(run: tuple[Path, str], tmp_path: Path) -> None:
    """kill -9 of the loop while a round trains: the round finishes on its own and resume records it."""
    import shutil

    from evolve import session

    db, _ = run
    copy = tmp_path / "run.db"  # the same stem: its adapters folder is tmp_path / "run-adapters"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    shutil.copytree(db.parent / "run-adapters", tmp_path / "run-adapters")
    last = [r for r in Archive.open(copy, readonly=True).adapters()
            if (tmp_path / "run-adapters" / f"round_{r.round}.json").is_file()][-1]
    with sqlite3.connect(copy) as conn:  # as if the loop died after its last round finished, before it recorded it
        conn.execute("DELETE FROM adapters WHERE round >= ?", (last.round,))  # (and no `evolve finetune` after)
        conn.execute("DELETE FROM events WHERE kind = 'adapter' AND json_extract(data, '$.round') >= ?", (last.round,))
        # and a third round that died with the loop: started, never finished, its process gone
        conn.execute("INSERT INTO events(time, sample, kind, data) VALUES (0, 1, 'finetune-start', ?)",
                     (json.dumps({"round": 99, "parent": "", "pid": 0}),))
    request = json.loads((tmp_path / "run-adapters" / f"round_{last.round}.json").read_text())
    request.update(round=99, out=str(tmp_path / "run-adapters" / "round_99"))  # never written
    (tmp_path / "run-adapters" / "round_99.json").write_text(json.dumps(request))
    archive = Archive.open(copy)
    evolution = session.open_evolution(archive, recorded_spec(archive), recorded_config(archive), pool=None,  # type: ignore[arg-type]
                                       fresh=False)
    taken = archive.latest_adapter()
    assert taken is not None and (taken.round, taken.path) == (last.round, last.path)  # recorded, nothing lost
    assert evolution.proposer.adapter == last.path
    assert [e.data["round"] for e in archive.events("finetune-failed")] == [99]
    archive.close()
    reopened = Archive.open(copy)  # a second resume takes up nothing twice
    session.open_evolution(reopened, recorded_spec(reopened), recorded_config(reopened), pool=None,  # type: ignore[arg-type]
                           fresh=False)
    assert [r.round for r in reopened.adapters()].count(last.round) == 1
    assert len(reopened.events("finetune-failed")) == 1


def test_a_crashing_round_is_a_logged_failure_not_a_dead_run(tmp_path: Path) -> None:
    from evolve import session
    from evolve.config import RunConfig

    spec = tmp_path / "fit.py"
    spec.write_text(FIT)
    config = RunConfig().replace(
        islands={"num_islands": 2}, loop={"budget": 48, "prompts_per_batch": 4, "samples_per_prompt": 2},
        sandbox={"workers": 2, "timeout_s": 10.0}, finetune={"every": 8, "base": str(tmp_path / "no-such-checkpoint")},
    )
    archive, loaded = session.new_run(str(spec), tmp_path / "run.db", config)
    with session.pool_for(config) as pool:
        reason = session.open_evolution(archive, loaded, config, pool, fresh=True).run()
    assert reason == "budget"
    done = Archive.open(tmp_path / "run.db", readonly=True)
    assert done.state()["stats"]["samples"] == 48
    failed = done.events("finetune-failed")
    assert failed and "cannot load the base checkpoint" in failed[0].data["log"]
    assert not done.has_adapters() and not list((tmp_path / "run-adapters").glob(".round_*"))


def test_dpo_round_widens_the_margin_of_chosen_over_rejected(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="needs the dpo extra (make test installs it)")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evolve import session
    from evolve.config import RunConfig
    from finetune.rounds import finetune_now

    spec = tmp_path / "fit.py"
    spec.write_text(FIT)
    config = RunConfig().replace(
        islands={"num_islands": 2}, loop={"budget": 48, "prompts_per_batch": 4, "samples_per_prompt": 2},
        sandbox={"workers": 2, "timeout_s": 10.0}, finetune={"steps": 8, "batch_size": 4, "learning_rate": 5e-3},
    )
    archive, loaded = session.new_run(str(spec), tmp_path / "run.db", config)
    with session.pool_for(config) as pool:
        session.open_evolution(archive, loaded, config, pool, fresh=True).run()
    archive.close()
    torch.set_num_threads(1)
    meta = finetune_now(tmp_path / "run.db", base=str(model_dir), method="dpo", out=tmp_path / "dpo")
    assert meta["method"] == "dpo" and meta["steps"] == 8 and meta["examples"] > 0
    assert not (tmp_path / "dpo" / "ref").exists()  # TRL's reference copy is not part of the adapter
    pairs = [json.loads(line) for line in (tmp_path / "dpo" / "train.jsonl").read_text().splitlines()]
    assert set(pairs[0]) == {"prompt", "chosen", "rejected"}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def margin(model: Any) -> float:
        """Mean over pairs of log p(chosen) - log p(rejected): what DPO raises."""
        chosen = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in pairs]
        rejected = [{"prompt": p["prompt"], "completion": p["rejected"]} for p in pairs]
        return float(sum(_logp(model, tokenizer, c) - _logp(model, tokenizer, r) for c, r in zip(chosen, rejected)) / len(pairs))

    base = margin(AutoModelForCausalLM.from_pretrained(model_dir))
    tuned = margin(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), tmp_path / "dpo"))
    assert tuned > base, (base, tuned)


def _logp(model: Any, tokenizer: Any, record: dict[str, str]) -> float:
    import torch

    prompt = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(record["completion"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1]
    return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).sum())


def test_a_round_still_training_after_its_loop_died_is_polled_by_pid(tmp_path: Path) -> None:
    from finetune.rounds import _Orphan

    # A stand-in for the round's process: same command-line marker, not this process's child once orphaned.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "finetune.train"])
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"finetune.train" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)  # right after the exec the kernel may still show an empty command line
        orphan = _Orphan(proc.pid, tmp_path / "round_1")
        assert orphan.poll() is None  # still training: polled, not waited for
        (tmp_path / "round_1").mkdir()
        (tmp_path / "round_1" / "meta.json").write_text("{}")  # train writes it last, with the whole adapter
        orphan.terminate()
        proc.wait(timeout=10)
        assert orphan.wait(timeout=10) == 0  # gone, and its adapter is whole: recorded as a finished round
    finally:
        proc.kill()
    assert _Orphan(proc.pid, tmp_path / "round_2").poll() == -1  # ended without an adapter: a failed round
