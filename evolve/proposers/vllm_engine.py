"""A proposer over an in-process vLLM engine on the GPU (the `gpu` extra).

    evolve run bin_packing_or --proposer vllm --model Qwen/Qwen2.5-Coder-1.5B

The engine is built on the first `propose`, never at import or construction,
with prefix caching on (every prompt of a run shares the spec's preface).
One `generate` call takes the whole batch of prompts with `n` samples each,
so vLLM schedules them together. A new LoRA adapter gets a fresh
`LoRARequest` id: the next batch uses it, with no restart.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolve.errors import ConfigError
from evolve.prompt import render
from evolve.proposers.arms import LMProposer
from evolve.proposers.base import Prompt, ProposerError
from evolve.proposers.lm import SamplingConfig, VLLMConfig, as_candidate

log = logging.getLogger(__name__)
INSTALL_HINT = "the vllm proposer needs the GPU extra on a CUDA machine: pip install 'evoloop[gpu]'"


def vllm_proposer(config: VLLMConfig, sampling: SamplingConfig, seed: int) -> LMProposer:
    """Return the `vllm` proposer: an in-process vLLM engine (built on the first batch)."""
    if not config.model:
        raise ConfigError("the vllm proposer needs --model NAME (a hub name or a local directory)")
    if importlib.util.find_spec("vllm") is None:  # checked without importing it: that waits for the first batch
        raise ProposerError(INSTALL_HINT)
    return LMProposer("vllm", VLLMBackend(config, sampling, seed), seed, adapter=config.adapter)


class VLLMBackend:
    """Sample candidates from a vLLM engine in this process, all prompts in one batch (the model half)."""

    def __init__(self, config: VLLMConfig, sampling: SamplingConfig, seed: int) -> None:
        self.config, self.sampling, self.seed = config, sampling, seed
        self.model = config.model
        self.generated_tokens = 0
        self._ids = itertools.count(1)  # LoRARequest ids: vLLM caches adapters by id, so each new one gets a fresh id
        self._lora: Any = None  # the LoRARequest an adapter batch carries
        self._adapter: tuple[str, str] = ("", "")  # (name, path) of the adapter to use
        self._llm: Any = None
        self._vllm: Any = None
        self._calls = 0

    def load_adapter(self, path: Path) -> None:
        """Sample from a new LoRA adapter from the next batch on (no restart): a fresh LoRARequest id."""
        if not self.config.enable_lora:
            raise ProposerError("vllm.enable_lora is off: switching adapters needs it on")
        self._adapter = (path.name, str(path))
        if self._vllm is not None:
            self._lora = self._make_lora()

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool) -> list[list[str]]:
        """Return `n` samples per prompt from one batched generate (or chat) call, with the adapter or without."""
        llm, vllm = self._engine()
        lora = self._lora if adapter else None
        rendered = [render(p, self.sampling.format) for p in prompts]
        self._calls += 1
        params = vllm.SamplingParams(
            n=n, temperature=self.sampling.temperature, top_p=self.sampling.top_p, max_tokens=self.sampling.max_tokens,
            stop=list(self.sampling.stop) if self.sampling.format == "completion" else None,
            seed=self.seed * 1_000_003 + self._calls,
        )
        if rendered and rendered[0].messages:
            outputs = llm.chat([list(r.messages) for r in rendered], params, lora_request=lora, use_tqdm=False)
        else:
            outputs = llm.generate([r.text for r in rendered], params, lora_request=lora, use_tqdm=False)
        if len(outputs) != len(rendered):
            raise ProposerError(f"vLLM returned {len(outputs)} outputs for {len(rendered)} prompts")
        result = []
        for r, output in zip(rendered, outputs, strict=True):
            self.generated_tokens += sum(len(c.token_ids) for c in output.outputs)
            result.append([as_candidate(r, c.text) for c in output.outputs][:n])
        return result

    def interrupt(self) -> None:
        """Nothing to do: vLLM's offline engine cannot be stopped mid-batch, and Ctrl-C's second press exits at once."""

    def notices(self) -> list[str]:
        return []

    def close(self) -> None:
        self._llm = None

    def _engine(self) -> tuple[Any, Any]:
        """Import vLLM and build the engine (once)."""
        if self._llm is not None:
            return self._llm, self._vllm
        try:
            import vllm
        except ImportError as exc:
            raise ProposerError(INSTALL_HINT) from exc
        c = self.config
        kwargs: dict[str, Any] = {
            "model": c.model, "enable_prefix_caching": True, "seed": self.seed, "dtype": c.dtype,
            "tensor_parallel_size": c.tensor_parallel_size, "gpu_memory_utilization": c.gpu_memory_utilization,
        }
        if c.max_model_len is not None:
            kwargs["max_model_len"] = c.max_model_len
        if c.enable_lora:
            kwargs.update(enable_lora=True, max_lora_rank=c.max_lora_rank)
        log.info("starting vLLM: %s", kwargs)
        self._vllm, self._llm = vllm, vllm.LLM(**kwargs)
        if self._adapter[1]:
            self._lora = self._make_lora()
        return self._llm, self._vllm

    def _make_lora(self) -> Any:
        from vllm.lora.request import LoRARequest

        name, path = self._adapter
        return LoRARequest(name, next(self._ids), path)
