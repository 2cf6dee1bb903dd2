"""The transformers proposer on a tiny real model built in the test (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the lm extra (make test installs it)")
pytest.importorskip("transformers")

from conftest import evolve, evolve_json  # noqa: E402
from evolve.errors import ConfigError  # noqa: E402
from evolve.prompt import build_prompt, spec_preface  # noqa: E402
from evolve.proposers.hf import transformers_proposer  # noqa: E402
from evolve.proposers.lm import SamplingConfig, TransformersConfig  # noqa: E402
from evolve.spec import load_spec  # noqa: E402
from tiny_lm import tiny_adapter, tiny_model  # noqa: E402

SAMPLING = SamplingConfig(max_tokens=24)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def prompts() -> list:
    spec = load_spec("bin_packing_or")
    preface = spec_preface(spec)
    return [build_prompt(i, (1,), (spec.function,), (-1.0,), spec.function_name, preface) for i in range(3)]


def test_batched_samples_are_whole_candidates_and_reproducible(model_dir: Path, prompts: list) -> None:
    config = TransformersConfig(model=str(model_dir), batch_size=2)
    first = transformers_proposer(config, SAMPLING, seed=3)
    out = [p.texts for p in first.propose(prompts, 2)]
    assert [len(o) for o in out] == [2, 2, 2]
    assert all(c.startswith("def priority_v1(item: float, bins: np.ndarray) -> np.ndarray:\n") for o in out for c in o)
    assert 0 < first.generated_tokens <= 3 * 2 * 24
    assert [p.texts for p in transformers_proposer(config, SAMPLING, seed=3).propose(prompts, 2)] == out  # same seed
    assert [p.texts for p in transformers_proposer(config, SAMPLING, seed=4).propose(prompts, 2)] != out


def test_interrupt_ends_generation_within_a_decoding_step(model_dir: Path, prompts: list) -> None:
    import threading
    import time

    from evolve.proposers.base import ProposerInterrupted

    long = SamplingConfig(max_tokens=1200, stop=())  # seconds of decoding: the interrupt comes first
    p = transformers_proposer(TransformersConfig(model=str(model_dir)), long, seed=3)
    p.backend._load()  # the model loaded before the clock starts
    timer = threading.Timer(0.3, p.interrupt)
    timer.start()
    started = time.monotonic()
    with pytest.raises(ProposerInterrupted):
        p.propose(prompts, 2)
    assert time.monotonic() - started < 5
    timer.join()


def test_a_peft_adapter_is_loaded_on_top(model_dir: Path, prompts: list, tmp_path: Path) -> None:
    adapter = tiny_adapter(model_dir, tmp_path / "adapter")
    plain = transformers_proposer(TransformersConfig(model=str(model_dir)), SAMPLING, seed=3)
    tuned = transformers_proposer(TransformersConfig(model=str(model_dir), adapter=str(adapter)), SAMPLING, seed=3)
    assert tuned.adapter == str(adapter)
    assert tuned.propose(prompts[:1], 2)[0].texts != plain.propose(prompts[:1], 2)[0].texts  # the LoRA weights change them
    assert tuned.propose(prompts[:1], 1)[0].origin.adapter == str(adapter)
    _, model, _ = tuned.backend._load()
    assert type(model).__name__.startswith("Peft")


def test_threads_set_torch_s_cpu_threads(model_dir: Path, prompts: list) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        transformers_proposer(TransformersConfig(model=str(model_dir), threads=2), SAMPLING, seed=0).propose(prompts[:1], 1)
        assert torch.get_num_threads() == 2
        transformers_proposer(TransformersConfig(model=str(model_dir)), SAMPLING, seed=0).propose(prompts[:1], 1)
        assert torch.get_num_threads() == 2  # 0: torch's own setting is left alone
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("config", "message"),
    [({}, "needs --model DIR"), ({"model": "/nonexistent/ckpt"}, "is not a directory"), ({"adapter": "/tmp"}, "adapter_config.json"),
     ({"threads": -1}, "transformers.threads must be >= 0")],
)
def test_config_mistakes(model_dir: Path, config: dict, message: str) -> None:
    settings = {"model": str(model_dir), **config} if config.get("adapter") else config
    with pytest.raises(ConfigError, match=message):
        transformers_proposer(TransformersConfig(**settings), SAMPLING, seed=0)


def test_evolve_run_with_the_tiny_model(model_dir: Path, tmp_path: Path) -> None:
    adapter = tiny_adapter(model_dir, tmp_path / "adapter", random_b=False)
    config = tmp_path / "lm.toml"
    config.write_text(
        "[islands]\nnum_islands = 2\n[loop]\nprompts_per_batch = 4\nsamples_per_prompt = 2\n"
        f"[sampling]\nmax_tokens = 24\n[transformers]\nadapter = \"{adapter}\"\n"
    )
    db = tmp_path / "t.db"
    proc = evolve("run", "bin_packing_or", "--proposer", "transformers", "--model", str(model_dir),
                  "--db", str(db), "--budget", "16", "--workers", "2", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    status = evolve_json("status", str(db))
    # Random weights write garbage after the header: every sample is rejected, by reason, and counted.
    assert status["samples"] == 16 and 0 < status["tokens"] <= 16 * 24
    assert sum(status["rejected"].values()) + status["evaluated"] - 1 + status["duplicates"] == 16
    assert set(status["rejected"]) <= {"empty", "syntax", "no-function", "empty-body"}
    assert status["proposer"] == "transformers"
