"""The `llamacpp` proposer and the openai proposer against the real llama.cpp server with the real model (Gemma 3 270M)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evolve.config import RunConfig
from evolve.prompt import build_prompt, spec_preface
from evolve.proposers.base import Prompt, ProposerError
from evolve.proposers.build import lm_proposer
from evolve.proposers.llamacpp import GGUF_ADAPTER_NAME, LlamaCppBackend
from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig
from evolve.proposers.openai_api import openai_proposer
from evolve.spec import load_spec
from llm_fixtures import gemma_gguf, model_cache, need_server, synthetic_peft_adapter  # noqa: F401  (session fixtures)
from sandbox.procs import alive

pytestmark = pytest.mark.usefixtures("need_server")
SPEC = load_spec("bin_packing_or")


def prompt(parents: int = 1) -> Prompt:
    functions = [SPEC.function] * parents
    return build_prompt(0, list(range(parents)), functions, [0.0] * parents, SPEC.function_name, spec_preface(SPEC))


def config(model: Path, **llamacpp: object) -> RunConfig:
    return RunConfig().replace(proposer="llamacpp", llamacpp={"model": str(model), "threads": 2, **llamacpp},
                               sampling={"max_tokens": 96}, sandbox={"workers": 1})


def test_a_batch_from_the_real_model_and_nothing_left_after_close(gemma_gguf: Path) -> None:  # noqa: F811
    p = lm_proposer("llamacpp", config(gemma_gguf, slots=2, ctx_per_slot=1024))
    backend = p.backend
    assert isinstance(backend, LlamaCppBackend) and backend.sampling.format == "completion"  # a base model: no template
    out = p.propose([prompt(), prompt(2)], 3)  # n = 3 > 2 slots: asked one by one, without a refused request
    pid = backend.server.pid
    assert pid is not None and alive(pid)
    assert p.notices() == []
    p.close()
    assert [len(x.texts) for x in out] == [3, 3]
    assert all(t.startswith("def priority_v") for x in out for t in x.texts)  # the header the completion continues
    assert {x.origin.proposer for x in out} == {"llamacpp"} and out[0].origin.model == gemma_gguf.name
    assert p.generated_tokens > 0  # from the server's usage
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_the_openai_proposer_falls_back_when_llama_cpp_refuses_n(gemma_gguf: Path) -> None:  # noqa: F811
    with LlamaServer(LlamaServerConfig(model=str(gemma_gguf), slots=1, ctx_per_slot=1024, threads=2, alias="g")) as s:
        run = RunConfig().replace(openai={"api_base": s.api_base, "model": "g"}, sampling={"max_tokens": 48})
        p = openai_proposer(run.openai, run.sampling, seed=0)
        first = p.propose([prompt()], 2)
        notes = p.notices()
        second = p.propose([prompt()], 2)  # remembered: no refused request again
        later = p.notices()
        p.close()
    assert [len(x.texts) for x in first + second] == [2, 2]
    assert len(notes) == 1 and "refuses n > 1" in notes[0] and later == []
    assert p.generated_tokens > 0


def test_a_prompt_longer_than_the_context_fails_with_both_sizes(gemma_gguf: Path) -> None:  # noqa: F811
    p = lm_proposer("llamacpp", config(gemma_gguf, slots=1, ctx_per_slot=256))
    try:
        with pytest.raises(ProposerError, match=r"the prompt has \d+ tokens and the server's context per request is 256"):
            p.propose([prompt(3)], 1)
    finally:
        p.close()


def test_an_adapter_is_converted_and_the_control_arm_is_the_base_model(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    run = config(gemma_gguf, slots=2, ctx_per_slot=1024).replace(sampling={"temperature": 0.0, "max_tokens": 24})
    p = lm_proposer("llamacpp", run)
    backend = p.backend
    assert isinstance(backend, LlamaCppBackend)
    try:
        base = backend.generate([prompt()], 1, adapter=False)
        peft_dir = synthetic_peft_adapter(tmp_path / "round_1", r=4, alpha=8, b_std=0.05)
        p.use_adapter(str(peft_dir), control_share=0.5)  # converts and restarts the server between batches
        assert (peft_dir / GGUF_ADAPTER_NAME).is_file()
        assert backend.server.config.lora == (str(peft_dir / GGUF_ADAPTER_NAME),)
        notes = p.notices()
        assert len(notes) == 1 and "round_1" in notes[0] and backend.swap_seconds[0] < 30
        control = backend.generate([prompt()], 1, adapter=False)
        tuned = backend.generate([prompt()], 1, adapter=True)
        mixed = p.propose([prompt()] * 6, 1)  # both arms, each recorded with its adapter ("" : the base model)
    finally:
        p.close()
    assert control == base  # scale 0 on the adapter's server is the base model (greedy decoding)
    assert tuned != base
    arms = {x.origin.adapter for x in mixed}
    assert arms == {"", str(peft_dir)}, arms  # seeded draws: both arms in this batch of 6
    # In a batch, llama.cpp decodes requests side by side, which is not bit-identical to one at a time: only the
    # adapter arm's (garbled, b_std 0.05) text can be told apart there.
    assert all(x.texts != base[0] for x in mixed if x.origin.adapter)
