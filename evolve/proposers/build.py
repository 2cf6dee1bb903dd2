"""Build a run's proposer from its configuration: one proposer, or a weighted mix of them.

    proposer = make_proposer(config, spec, rng)      # nothing heavy yet: models load on the first batch

Language-model backends start lazily: a server is first called, a
checkpoint first loaded and an engine first built on the first `propose`.
With `executor.kind = "ray"` the transformers and vllm proposers run as Ray
actors on the cluster's GPU nodes (evolve.distributed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evolve import distributed
from evolve.config import RunConfig
from evolve.errors import ConfigError
from evolve.proposers.base import Proposer
from evolve.proposers.gp import GPProposer
from evolve.proposers.hf import transformers_proposer
from evolve.proposers.llamacpp import llamacpp_proposer
from evolve.proposers.mixed import MixedProposer, ProposerMix
from evolve.proposers.openai_api import openai_proposer
from evolve.proposers.vllm_engine import vllm_proposer
from evolve.spec import Spec, SpecError

LM_PROPOSERS = ("llamacpp", "openai", "transformers", "vllm")
PROPOSERS = ("gp", *LM_PROPOSERS)


def make_proposer(config: RunConfig, spec: Spec, rng: np.random.Generator, api_key: str | None = None) -> Proposer:
    """Build the proposer `config.proposer` names; `api_key` (openai) is given at each start, never stored."""
    mix = config.proposer
    if not mix.mixed:
        return _one(mix.names[0], config, spec, rng, api_key)
    return MixedProposer([(_one(name, config, spec, rng, api_key), weight) for name, weight in mix.parts], config.loop.seed)


def lm_proposer(name: str, config: RunConfig, api_key: str | None = None) -> Proposer:
    """Return the `llamacpp`, `openai`, `transformers` or `vllm` proposer configured by `config`, in this process."""
    seed = config.loop.seed
    if name == "llamacpp":
        return llamacpp_proposer(config.llamacpp, config.sampling, seed, config.sandbox.workers)
    if name == "openai":
        return openai_proposer(config.openai, config.sampling, seed, api_key)
    if name == "transformers":
        return transformers_proposer(config.transformers, config.sampling, seed)
    if name == "vllm":
        return vllm_proposer(config.vllm, config.sampling, seed)
    raise ValueError(f"not a language-model proposer: {name!r}")


def model_overrides(mix: ProposerMix, model: str | None, api_base: str | None) -> dict[str, Mapping[str, Any]]:
    """Return config overrides that give `model` to every language-model proposer of `mix` (and `api_base` to openai)."""
    out: dict[str, dict[str, Any]] = {name: {"model": model} for name in mix.names if name in LM_PROPOSERS and model}
    if api_base:
        out.setdefault("openai", {})["api_base"] = api_base
    return dict(out)


def _one(name: str, config: RunConfig, spec: Spec, rng: np.random.Generator, api_key: str | None) -> Proposer:
    if name == "gp":
        try:
            return GPProposer(spec.gp_primitives, spec.function, rng, config.gp)
        except ValueError as exc:  # a GP_PRIMITIVES declaration that does not fit the function
            raise SpecError(spec.path, None, str(exc), "fix GP_PRIMITIVES or remove it") from exc
    if name in LM_PROPOSERS:
        if config.executor.kind == "ray" and name in distributed.REMOTE_PROPOSERS:  # a Ray actor on a GPU node
            return distributed.remote_proposer(name, config, api_key)
        return lm_proposer(name, config, api_key)
    raise ConfigError(f"unknown proposer {name!r}; available here: {', '.join(PROPOSERS)}")
