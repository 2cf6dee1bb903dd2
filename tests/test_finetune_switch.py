"""Each proposer switches to a new adapter without a restart and keeps a control arm on the base model.

transformers: a tiny real model with real PEFT adapters (a few seconds);
vLLM: the stand-in engine of test_proposers_vllm; openai: the real HTTP
stand-in server, whose runtime adapter endpoint is vLLM's.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from evolve.prompt import build_prompt
from evolve.proposers.base import Origin, ProposerError
from evolve.proposers.lm import OpenAIConfig, SamplingConfig, VLLMConfig
from evolve.proposers.openai_api import openai_proposer
from evolve.proposers.vllm_engine import vllm_proposer
from finetune.rounds import switch
from openai_server import fake_openai
from test_proposers_vllm import adapter_dir, stand_in  # noqa: F401 (a fixture)

SEED = "def priority(item, bins):\n    return -(bins - item)\n"
PROMPTS = [build_prompt(i, (1,), (SEED,), (-1.0,), "priority", "import numpy as np\n") for i in range(12)]


def arms(origins: list[Origin]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in origins:
        out[o.adapter] = out.get(o.adapter, 0) + 1
    return out


def test_vllm_switches_and_sends_the_control_share_without_the_adapter(stand_in: ModuleType, tmp_path: Path) -> None:  # noqa: F811
    proposer = vllm_proposer(VLLMConfig(model="m"), SamplingConfig(), seed=1)
    path = adapter_dir(tmp_path / "round_1")
    assert switch(proposer, str(path), control_share=0.5) == []
    out = proposer.propose(PROMPTS, 2)
    counts = arms([p.origin for p in out])
    assert set(counts) == {str(path), ""} and sum(counts.values()) == 12
    calls = stand_in.BUILT[0].calls
    with_lora = [c for c in calls if c[3] is not None]
    without = [c for c in calls if c[3] is None]
    assert len(with_lora) == len(without) == 1  # one batched call per arm
    assert len(with_lora[0][1]) == counts[str(path)] and with_lora[0][3].lora_path == str(path)
    assert all(len(p.texts) == 2 for p in out)


def test_openai_loads_the_adapter_into_the_server_and_names_it(tmp_path: Path) -> None:
    path = adapter_dir(tmp_path / "round_2")
    with fake_openai() as server:
        config = OpenAIConfig(api_base=server.url, model="base-coder", backoff_s=0.0)
        proposer = openai_proposer(config, SamplingConfig(), seed=0)
        proposer.use_adapter(str(path), control_share=0.25)
        out = proposer.propose(PROMPTS, 1)
    load = server.requests[0]
    assert load["path"] == "/v1/load_lora_adapter" and load["lora_path"] == str(path.resolve())
    served = load["lora_name"]
    by_model = {r["model"] for r in server.requests[1:]}
    assert by_model == {served, "base-coder"}
    counts = arms([p.origin for p in out])
    assert counts[str(path)] == sum(r["model"] == served for r in server.requests[1:]) and counts[""] >= 1
    with pytest.raises(ProposerError, match="adapter_config.json"):
        proposer.use_adapter(str(tmp_path))


def test_transformers_hot_swaps_peft_weights_in_memory(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from evolve.proposers.hf import transformers_proposer
    from evolve.proposers.lm import TransformersConfig
    from tiny_lm import tiny_adapter, tiny_model

    model_dir = tiny_model(tmp_path / "tiny")
    first, second = tiny_adapter(model_dir, tmp_path / "a1", seed=1), tiny_adapter(model_dir, tmp_path / "a2", seed=2)
    sampling = SamplingConfig(max_tokens=8)
    proposer = transformers_proposer(TransformersConfig(model=str(model_dir)), sampling, seed=3)
    prompts = PROMPTS[:4]
    base = proposer.propose(prompts, 1)
    proposer.use_adapter(str(first))
    _, model, _ = proposer.backend._load()
    assert type(model).__name__.startswith("Peft") and len(model.peft_config) == 1
    tuned = proposer.propose(prompts, 1)
    assert {p.origin.adapter for p in tuned} == {str(first)}
    proposer.use_adapter(str(second), control_share=0.5)
    _, model, _ = proposer.backend._load()
    assert len(model.peft_config) == 1  # the old adapter is dropped: memory stays flat over many rounds
    mixed = proposer.propose(PROMPTS, 1)
    assert set(arms([p.origin for p in mixed])) <= {str(second), ""} and len(mixed) == 12
    # The control arm really runs without the adapter: same answers as a proposer that never had one.
    assert [p.texts for p in base] != [p.texts for p in tuned]  # the adapter changes the samples
    control = [i for i, p in enumerate(mixed) if p.origin.adapter == ""]
    assert control  # seeded: 12 prompts at 0.5 draw some
    fresh = transformers_proposer(TransformersConfig(model=str(model_dir)), sampling, seed=3)
    fresh.backend._calls = proposer.backend._calls  # the same sampling seed for the next call of each
    with_off = proposer.backend.generate([PROMPTS[i] for i in control], 1, adapter=False)
    assert with_off == [p.texts for p in fresh.propose([PROMPTS[i] for i in control], 1)]
