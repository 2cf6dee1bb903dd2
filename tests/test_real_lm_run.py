"""Whole runs with the real model: `evolve run --proposer llamacpp` (Gemma 3 270M on llama.cpp), killed, resumed, tuned.

The short ones run in `make test`; the LoRA round end to end (minutes of CPU training) is `slow` (`make test-slow`).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import evolve, interrupt, start_evolve, wait_for
from llm_fixtures import gemma_gguf, gemma_hf, model_cache, need_server  # noqa: F401  (session fixtures)
from sandbox.procs import alive, command_line, descendants

pytestmark = pytest.mark.usefixtures("need_server")
SMALL = "[islands]\nnum_islands = 2\n[loop]\nprompts_per_batch = 2\nsamples_per_prompt = 2\n[sampling]\nmax_tokens = 96\n"


def small_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL + extra)
    return path


def llm_programs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT proposer, COALESCE(adapter, '') FROM programs WHERE proposer = 'llamacpp'").fetchall()


def llm_programs_so_far(db: Path) -> int:
    """Count them while a run writes the file: 0 until it exists and its tables are made (creating is not atomic)."""
    try:
        return len(llm_programs(db)) if db.exists() else 0
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return 0


def servers_of(pid: int) -> list[int]:
    """Return the llama.cpp server processes below `pid`."""
    return [p for p in descendants([pid]) if "llamacpp_serve" in command_line(p)]


def start_run(db: Path, config: Path, model: Path, budget: int) -> subprocess.Popen[str]:
    return start_evolve("run", "bin_packing_or", "--proposer", "llamacpp", "--model", str(model), "--db", str(db),
                        "--budget", str(budget), "--workers", "1", "--config", str(config))


def tokens(db: Path) -> int:
    return int(json.loads(evolve("status", str(db), "--json").stdout)["tokens"])


def test_a_short_run_with_the_real_model(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "llm.db"
    proc = evolve("run", "bin_packing_or", "--proposer", "llamacpp", "--model", str(gemma_gguf), "--db", str(db),
                  "--budget", "8", "--workers", "1", "--config", str(small_config(tmp_path)), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "run finished: 8 samples" in proc.stdout
    rows = llm_programs(db)
    assert rows and all(adapter == "" for _, adapter in rows)  # evaluated candidates of the real model
    status = json.loads(evolve("status", str(db), "--json").stdout)
    assert status["tokens"] > 0 and status["samples"] == 8


def test_kill_9_leaves_no_server_and_resume_starts_it_again(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "killed.db"
    config = small_config(tmp_path)
    proc = start_run(db, config, gemma_gguf, budget=400)
    try:
        assert wait_for(lambda: llm_programs_so_far(db) >= 2, 300), proc.stderr and proc.stderr.read()
        servers = servers_of(proc.pid)
        assert len(servers) == 1
        proc.kill()  # SIGKILL: no cleanup in the loop at all
        proc.wait(timeout=10)
        assert wait_for(lambda: not alive(servers[0]), 10), command_line(servers[0])  # died with its parent
    finally:
        if proc.poll() is None:
            proc.kill()
    before, tokens_before = len(llm_programs(db)), tokens(db)
    # 16 more samples: a handful can all be duplicates or rejections, which would leave no new program to see
    resumed = evolve("resume", str(db), "--budget", str(json.loads(evolve("status", str(db), "--json").stdout)["samples"] + 16),
                     timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert tokens(db) > tokens_before  # the server started again and answered
    assert len(llm_programs(db)) > before


def test_ctrl_c_stops_within_seconds_and_leaves_no_server(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "stopped.db"
    proc = start_run(db, small_config(tmp_path), gemma_gguf, budget=400)
    try:
        assert wait_for(lambda: bool(servers_of(proc.pid)) and llm_programs_so_far(db) >= 1, 300)
        servers = servers_of(proc.pid)
        out, err, took = interrupt(proc)  # once: the batch being proposed is dropped, the one in the sandbox kept
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 15, took
    assert "run stopped" in out, out
    assert all(not alive(p) for p in servers)


@pytest.mark.slow
def test_a_lora_round_on_the_real_model_end_to_end(gemma_gguf: Path, gemma_hf: Path, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "tuned.db"
    config = small_config(tmp_path, "[finetune]\nsteps = 2\nmax_length = 256\nbatch_size = 1\nthreads = 2\n"
                          "top_share = 1.0\nimproving_only = false\ncontrol_share = 0.5\nwait_at_end_s = 1200\n")
    first = evolve("run", "bin_packing_or", "--proposer", "llamacpp", "--model", str(gemma_gguf), "--db", str(db),
                   "--budget", "12", "--workers", "1", "--finetune-every", "4", "--config", str(config),
                   timeout=1800)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        [(path, base_model)] = conn.execute("SELECT path, base_model FROM adapters").fetchall()[:1]
    assert base_model == str(gemma_gguf)
    assert (Path(path) / "adapter.gguf").is_file()  # converted for llama.cpp when the proposer switched to it
    resumed = evolve("resume", str(db), "--budget", "20", timeout=1800)
    assert resumed.returncode == 0, resumed.stderr
    arms = {adapter for _, adapter in llm_programs(db)}
    assert path in arms  # the adapter arm sampled after the switch (and its control arm: the base model)
    out = tmp_path / "export"
    exported = evolve("export", str(db), str(out), "--adapters", timeout=600)
    assert exported.returncode == 0, exported.stderr
    round_dir = out / "adapters" / "round_1"
    assert (round_dir / "adapter_config.json").is_file() and (round_dir / "adapter.gguf").is_file()
    # Both forms load: PEFT on the transformers checkpoint, llama.cpp with --lora.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(gemma_hf), str(round_dir))
    assert type(model).__name__.startswith("Peft")
    with LlamaServer(LlamaServerConfig(model=str(gemma_gguf), threads=2, ctx_per_slot=256,
                                       lora=(str(round_dir / "adapter.gguf"),))) as server:
        assert [a["path"] for a in server.lora_adapters()] == [str(round_dir / "adapter.gguf")]
