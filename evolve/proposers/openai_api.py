"""A proposer for any OpenAI-compatible server: `vllm serve`, llama.cpp's server, Ollama.

    evolve run bin_packing_or --proposer openai --api-base http://127.0.0.1:8000/v1 --model NAME

The completion format goes to `/completions`, chat and diff to
`/chat/completions`. Prompts are sent concurrently (at most
`openai.concurrency` requests in flight); 429, 5xx and connection errors are
retried with exponential backoff; any other 4xx is a `ProposerError` that
quotes the server. A server that ignores `n` (llama.cpp, Ollama) is asked
again until each prompt has its `n` samples.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from evolve.errors import ConfigError
from evolve.prompt import render
from evolve.proposers.arms import LMProposer
from evolve.proposers.base import Prompt, ProposerError
from evolve.proposers.lm import OpenAIConfig, SamplingConfig, as_candidate

log = logging.getLogger(__name__)
DEFAULT_API_BASE = "http://127.0.0.1:8000/v1"  # where `vllm serve` listens
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


def resolve_api_base(config: OpenAIConfig) -> str:
    return (config.api_base or os.environ.get("EVOLVE_API_BASE") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_API_BASE).rstrip("/")


def resolve_model(config: OpenAIConfig) -> str:
    return config.model or os.environ.get("EVOLVE_MODEL", "")


def openai_proposer(config: OpenAIConfig, sampling: SamplingConfig, seed: int, api_key: str | None = None) -> LMProposer:
    """Return the `openai` proposer: any OpenAI-compatible server."""
    return LMProposer("openai", OpenAIBackend(config, sampling, seed, api_key), seed)


class OpenAIBackend:
    """Ask an OpenAI-compatible server for candidates, many requests at once (the model half of the proposer)."""

    def __init__(self, config: OpenAIConfig, sampling: SamplingConfig, seed: int, api_key: str | None = None) -> None:
        self.config, self.sampling = config, sampling
        self.api_base = resolve_api_base(config)
        self.model = resolve_model(config)
        if not self.model:
            raise ConfigError("the openai proposer needs a model name: pass --model NAME or set $EVOLVE_MODEL")
        key = api_key or os.environ.get("EVOLVE_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._seeds = itertools.count(seed * 1_000_003)  # one per request: reproducible on servers that honor it
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None  # built on first use
        self.generated_tokens = 0
        self._served = ""  # the server's name of the adapter loaded ("" : none)

    def load_adapter(self, path: Path) -> None:
        """Load a LoRA adapter into the server at runtime; adapter requests then name it as their model.

        vLLM's server does this through `POST /v1/load_lora_adapter` when it
        runs with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`.
        The directory must be readable by the server (same machine, or a
        shared file system).
        """
        served = f"evoloop-{path.parent.name}-{path.name}"
        self._post("/load_lora_adapter", {"lora_name": served, "lora_path": str(path.resolve())}, expect_json=False)
        self._served = served
        log.info("the server loaded the adapter %s as %s", path, served)

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool) -> list[list[str]]:
        """Return `n` candidates per prompt; requests run concurrently, results keep the prompts' order."""
        model = self._served if adapter and self._served else self.model
        seeds = [next(self._seeds) for _ in prompts]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, max(1, len(prompts)))) as pool:
            return list(pool.map(lambda ps: self._samples(ps[0], n, ps[1], model), zip(prompts, seeds, strict=True)))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- one prompt ------------------------------------------------------------

    def _samples(self, prompt: Prompt, n: int, seed: int, model: str) -> list[str]:
        rendered = render(prompt, self.sampling.format)
        out: list[str] = []
        for attempt in range(n):  # a server that ignores `n` answers one at a time
            body: dict[str, Any] = {
                "model": model, "n": n - len(out), "max_tokens": self.sampling.max_tokens,
                "temperature": self.sampling.temperature, "top_p": self.sampling.top_p, "seed": seed + attempt,
            }
            if rendered.messages:
                body["messages"] = list(rendered.messages)
                data = self._post("/chat/completions", body)
                texts = [(c.get("message") or {}).get("content") or "" for c in data.get("choices", [])]
            else:
                body["prompt"], body["stop"] = rendered.text, list(self.sampling.stop)
                data = self._post("/completions", body)
                texts = [c.get("text") or "" for c in data.get("choices", [])]
            with self._lock:
                self.generated_tokens += int((data.get("usage") or {}).get("completion_tokens") or 0)
            out.extend(as_candidate(rendered, t) for t in texts)
            if len(out) >= n or not texts:
                break
        return (out + [""] * n)[:n]  # missing samples are empty: rejected as such

    def _post(self, path: str, body: dict[str, Any], expect_json: bool = True) -> dict[str, Any]:
        """POST with retries on 429/5xx/connection errors; raise ProposerError on anything else."""
        url = self.api_base + path
        backoff = self.config.backoff_s
        for attempt in range(self.config.retries + 1):
            last = attempt == self.config.retries
            try:
                response = self.client.post(url, json=body, headers=self._headers)
            except httpx.TransportError as exc:
                if last:
                    raise ProposerError(f"{url}: {type(exc).__name__}: {exc} (after {attempt + 1} attempts)") from exc
                delay = backoff
                log.warning("%s: %s; retrying in %.1fs", url, exc, delay)
            else:
                if response.status_code == 200:
                    if not expect_json:  # e.g. vLLM's adapter loading answers in plain text
                        return {}
                    try:
                        return dict(response.json())
                    except ValueError as exc:
                        raise ProposerError(f"{url}: the server's answer is not JSON: {response.text[:200]!r}") from exc
                message = _error_message(response)
                if response.status_code not in RETRY_STATUS:
                    raise ProposerError(f"{url}: HTTP {response.status_code}: {message}")
                if last:
                    raise ProposerError(f"{url}: HTTP {response.status_code} after {attempt + 1} attempts: {message}")
                delay = _retry_after(response, backoff)
                log.warning("%s: HTTP %d (%s); retrying in %.1fs", url, response.status_code, message, delay)
            time.sleep(delay)
            backoff *= 2
        raise AssertionError("unreachable")

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=self.config.concurrency, max_keepalive_connections=self.config.concurrency)
                self._client = httpx.Client(timeout=self.config.timeout_s, limits=limits)
            return self._client


def _error_message(response: httpx.Response) -> str:
    """Return the server's own words: OpenAI's {"error": {"message": ...}}, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return str(data)[:200]


MAX_RETRY_AFTER_S = 120.0  # a server that asks for longer (an hour, a date) would stall the run: wait this, retry


def _retry_after(response: httpx.Response, default: float) -> float:
    """Return the seconds a 429/503 asks us to wait (Retry-After in seconds), at most MAX_RETRY_AFTER_S."""
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers.get("retry-after", ""))))
    except ValueError:  # absent, or an HTTP date
        return default
