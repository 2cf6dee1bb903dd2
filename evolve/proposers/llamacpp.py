"""The `llamacpp` proposer: a GGUF model on this machine's CPU, served by llama.cpp that evoloop starts and stops.

    evolve run bin_packing_or --proposer llamacpp --model gemma-3-270m     # a known model, assembled once
    evolve run bin_packing_or --proposer llamacpp --model path/to/any.gguf

The backend owns one `LlamaServer` (a child process on a loopback port,
llamacpp_server.py) and talks to it through the openai backend: streamed
requests, stall detection, retries, the n > slots fallback, usage-based
token counts. The server is sized from the run: `llamacpp.slots` requests in
flight, `ctx_per_slot` tokens each, and the cores the sandbox workers leave
as decoding threads. It starts on the first batch and stops with the run
(Ctrl-C, an error, `kill -9` of the loop: the child dies with its parent).

A base model (no chat template in its GGUF file) is prompted in the
completion format, a model with a template in the chat format, unless
`llamacpp.format` says otherwise.

LoRA: llama.cpp loads adapters only at start. `load_adapter(PEFT dir)`
converts the adapter to a llama.cpp LoRA GGUF (finetune.gguf_adapter),
beside the PEFT files, and restarts the server with it between batches;
each request then scales it: 1 for the adapter arm, 0 for the base
model's control arm, so both arms share one server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from evolve.errors import ConfigError
from evolve.proposers.arms import LMProposer, adapter_dir
from evolve.proposers.base import Prompt, ProposerError
from evolve.proposers.lm import LlamaCppConfig, OpenAIConfig, PromptFormat, SamplingConfig

log = logging.getLogger(__name__)
GGUF_ADAPTER_NAME = "adapter.gguf"  # written beside a round's PEFT files (what `evolve export --adapters` copies too)


def llamacpp_proposer(config: LlamaCppConfig, sampling: SamplingConfig, seed: int, sandbox_workers: int = 0) -> LMProposer:
    """Return the `llamacpp` proposer; the model is resolved now (a known one assembled on first use), the server later."""
    backend = LlamaCppBackend(config, sampling, seed, threads=decode_threads(config, sandbox_workers))
    return LMProposer("llamacpp", backend, seed, adapter=config.adapter)


def decode_threads(config: LlamaCppConfig, sandbox_workers: int) -> int:
    """Return the decoding threads: `llamacpp.threads`, else the cores the sandbox workers leave (at least 1)."""
    if config.threads:
        return config.threads
    return max(1, (os.cpu_count() or 1) - sandbox_workers)


def model_file(config: LlamaCppConfig) -> Path:
    """Return the GGUF file `llamacpp.model` names (a known model is assembled into the cache on first use)."""
    from evolve.models import ModelError, resolve

    try:
        return resolve(config.model)
    except ModelError as exc:
        raise ConfigError(f"llamacpp.model: {exc}") from None


class LlamaCppBackend:
    """The model half of the `llamacpp` proposer: one llama.cpp server, asked through the openai backend."""

    def __init__(self, config: LlamaCppConfig, sampling: SamplingConfig, seed: int, threads: int) -> None:
        from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig

        self.config, self.seed = config, seed
        self.path = model_file(config)
        self.model = self.path.name  # recorded with every program
        server_config = LlamaServerConfig(model=str(self.path), slots=config.slots, ctx_per_slot=config.ctx_per_slot,
                                          threads=threads, alias="evoloop")
        self.server = LlamaServer(server_config)
        self.sampling = dataclasses.replace(sampling, format=self._format(sampling))
        self.adapter = ""  # the PEFT directory whose GGUF conversion the server holds ("" : none)
        self.swap_seconds: list[float] = []  # each adapter swap: conversion and restart
        self._client: Any = None  # the OpenAIBackend, made when the server is up
        self._lock = threading.Lock()
        self._notices: list[str] = []
        self._tokens_before = 0  # tokens of clients closed by restarts

    @property
    def generated_tokens(self) -> int:
        return self._tokens_before + (self._client.generated_tokens if self._client is not None else 0)

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool) -> list[list[str]]:
        """Return `n` samples per prompt; with an adapter loaded, each request scales it (1: adapter arm, 0: base)."""
        client = self._started()
        extra = {"lora": [{"id": 0, "scale": 1.0 if adapter else 0.0}]} if self.server.config.lora else None
        return list(client.generate(prompts, n, adapter=False, extra=extra))

    def load_adapter(self, path: Path) -> None:
        """Convert the PEFT adapter at `path` to a llama.cpp LoRA GGUF and restart the server with it (between batches)."""
        from finetune.gguf_adapter import AdapterConversionError, convert_adapter

        began = time.monotonic()
        path = adapter_dir(path)
        target = path / GGUF_ADAPTER_NAME
        try:
            if not target.is_file() or target.stat().st_mtime < (path / "adapter_config.json").stat().st_mtime:
                convert_adapter(path, self.path, target)
        except AdapterConversionError as exc:
            raise ProposerError(f"{path}: cannot convert the adapter for llama.cpp: {exc}") from None
        config = self.server.config.with_lora([target], scale=0.0)  # requests that give no scale: the base model
        with self._lock:
            self.adapter = str(path)
            if self.server.running:
                self._retire_client()
                self.server.restart(config)
            else:
                self.server = type(self.server)(config)  # started with the first batch
        took = time.monotonic() - began
        self.swap_seconds.append(took)
        self._note(f"llama.cpp now samples from {path.name} (converted and restarted in {took:.1f} s)")

    def interrupt(self) -> None:
        client = self._client
        if client is not None:
            client.interrupt()

    def notices(self) -> list[str]:
        with self._lock:
            out, self._notices = self._notices, []
        client = self._client
        return out + (client.notices() if client is not None else [])

    def close(self) -> None:
        with self._lock:
            self._retire_client()
            self.server.stop()

    # -- inside --------------------------------------------------------------------------------------------

    def _format(self, sampling: SamplingConfig) -> PromptFormat:
        if self.config.format != "auto":
            return cast(PromptFormat, self.config.format)  # checked by LlamaCppConfig
        from evolve.gguf_info import GGUFError, read_header

        try:
            template = read_header(self.path).chat_template
        except GGUFError as exc:
            raise ConfigError(f"llamacpp.model: {exc}") from None
        chosen: PromptFormat = "chat" if template else "completion"
        if sampling.format == "diff" and template:
            chosen = "diff"
        return chosen

    def _started(self) -> Any:
        """Start the server (the first batch, or after a crash of it) and return the openai backend that asks it."""
        from evolve.proposers.llamacpp_server import LlamaServerError
        from evolve.proposers.openai_api import OpenAIBackend

        with self._lock:
            if self._client is not None and self.server.running:
                return self._client
            self._retire_client()
            try:
                took = self.server.start()
            except LlamaServerError as exc:
                raise ProposerError(str(exc)) from None
            log.info("llama.cpp: %s on %d slot(s) x %d tokens, started in %.1f s", self.model, self.server.slots,
                     self.server.ctx_per_slot, took)
            openai = OpenAIConfig(api_base=self.server.api_base, model=self.server.config.model_name,
                                  concurrency=self.server.slots, timeout_s=self.config.timeout_s,
                                  stall_s=self.config.stall_s, health_path="/health", retries=self.config.retries)
            self._client = OpenAIBackend(openai, self.sampling, self.seed + len(self.swap_seconds))
            self._client.max_n = self.server.slots  # llama.cpp refuses n above its slots: ask one by one then
            return self._client

    def _retire_client(self) -> None:
        if self._client is not None:
            self._tokens_before += self._client.generated_tokens
            self._client.close()
            self._client = None

    def _note(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self._notices.append(message)
