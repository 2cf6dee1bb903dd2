"""Build the language-model proposers by name, importing each backend only when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evolve.proposers.base import Proposer

if TYPE_CHECKING:
    from evolve.config import RunConfig

LM_PROPOSERS = ("openai", "transformers", "vllm")


def lm_proposer(name: str, config: RunConfig, api_key: str | None = None) -> Proposer:
    """Return the `openai`, `transformers` or `vllm` proposer configured by `config`.

    Nothing heavy happens here: a server is first called, a checkpoint first
    loaded and an engine first built on the first `propose`.
    """
    seed = config.loop.seed
    if name == "openai":
        from evolve.proposers.openai_api import OpenAIProposer

        return OpenAIProposer(config.openai, config.sampling, seed, api_key)
    if name == "transformers":
        from evolve.proposers.hf import TransformersProposer

        return TransformersProposer(config.transformers, config.sampling, seed)
    if name == "vllm":
        from evolve.proposers.vllm_engine import VLLMProposer

        return VLLMProposer(config.vllm, config.sampling, seed)
    raise ValueError(f"not a language-model proposer: {name!r}")
