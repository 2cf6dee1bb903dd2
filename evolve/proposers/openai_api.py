"""A proposer for any OpenAI-compatible server: `vllm serve`, llama.cpp's server, Ollama.

    evolve run bin_packing_or --proposer openai --api-base http://127.0.0.1:8000/v1 --model NAME

The completion format goes to `/completions`, chat and diff to
`/chat/completions`, always streamed (evolve.proposers.streaming), so that
a server that stalls is noticed within `openai.stall_s`, not after
`timeout_s`, and retried. Prompts are sent concurrently (at most
`openai.concurrency` requests in flight) from one asyncio loop; 429, 5xx,
stalls and connection errors are retried with exponential backoff; any
other 4xx is a `ProposerError` that quotes the server. `interrupt()`
(Ctrl-C) cancels every request at once.

Servers differ in how they take `n`: one that refuses n > 1 (llama.cpp with
fewer slots than `n`) is sent n parallel single requests from then on; one
that ignores `n` (Ollama) is asked again until each prompt has its `n`
samples. A prompt longer than the server's context fails with one line that
names both sizes. Token counts come from the server's `usage`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from evolve.errors import ConfigError
from evolve.prompt import Rendered, render
from evolve.proposers.arms import LMProposer
from evolve.proposers.base import Prompt, ProposerError, ProposerInterrupted
from evolve.proposers.lm import OpenAIConfig, SamplingConfig, as_candidate
from evolve.proposers.streaming import EventLoop, Reply, Stalled, Watch, post_streamed

log = logging.getLogger(__name__)
DEFAULT_API_BASE = "http://127.0.0.1:8000/v1"  # where `vllm serve` listens
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_N_REFUSED = re.compile(r"\bfield 'n'|\bn\b.*(must be|at most|<=)|\bn must\b", re.IGNORECASE)
WAIT_POLL_S = 0.25  # how often a waiting generate() looks for an interrupt


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
        root = self.api_base.removesuffix("/v1")
        self._watch = Watch(config.stall_s, config.timeout_s, root + config.health_path if config.health_path else "")
        # One base per prompt, 1024 apart: its requests (asked again, or split into single ones) add their index.
        self._seeds = itertools.count(seed * 1_000_003 * 1024, 1024)
        self._lock = threading.Lock()
        self._runner: EventLoop | None = None  # started on first use
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._single_n = False  # the server refused n > 1: parallel single requests from then on
        self.max_n = 0  # known largest n the server takes (llama.cpp: its slots); 0: unknown, learnt from a refusal
        self._interrupted = threading.Event()
        self._notices: list[str] = []
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
        self._wait([self._submit(self._load_lora(served, path))])
        self._served = served
        log.info("the server loaded the adapter %s as %s", path, served)

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool,
                 extra: Mapping[str, Any] | None = None) -> list[list[str]]:
        """Return `n` candidates per prompt; requests run concurrently, results keep the prompts' order.

        `extra` is merged into every request's body (llama.cpp's per-request "lora" scales, ...).
        """
        model = self._served if adapter and self._served else self.model
        self._interrupted.clear()
        futures = [self._submit(self._samples(render(p, self.sampling.format), n, next(self._seeds), model, extra or {}))
                   for p in prompts]
        return self._wait(futures)

    def interrupt(self) -> None:
        self._interrupted.set()
        if self._runner is not None:
            self._runner.cancel_all()

    def notices(self) -> list[str]:
        with self._lock:
            out, self._notices = self._notices, []
        return out

    def close(self) -> None:
        if self._runner is not None:
            runner, client, self._runner, self._client = self._runner, self._client, None, None
            if client is not None:
                closing = runner.submit(client.aclose())
                concurrent.futures.wait([closing], timeout=5)
            runner.close()

    # -- the event loop ----------------------------------------------------------------

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            if self._runner is None:
                self._runner = EventLoop()
                limits = httpx.Limits(max_connections=self.config.concurrency * 2,
                                      max_keepalive_connections=self.config.concurrency)
                # The stall watch bounds reads; httpx's own timeout only backs it up.
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_s, connect=10.0), limits=limits)
            runner = self._runner
        return runner.submit(coro)

    def _wait(self, futures: list[concurrent.futures.Future[Any]]) -> list[Any]:
        """Wait for every future (their order kept); an interrupt cancels them all and raises ProposerInterrupted."""
        pending = set(futures)
        try:
            while pending:
                if self._interrupted.is_set():
                    raise ProposerInterrupted("the batch was abandoned")
                done, pending = concurrent.futures.wait(pending, timeout=WAIT_POLL_S,
                                                        return_when=concurrent.futures.FIRST_EXCEPTION)
                for future in done:
                    if future.cancelled():
                        raise ProposerInterrupted("the batch was abandoned")
                    error = future.exception()
                    if error is not None:
                        raise error
        finally:
            for future in pending:
                future.cancel()
        return [f.result() for f in futures]

    # -- one prompt ---------------------------------------------------------------------

    async def _samples(self, rendered: Rendered, n: int, seed: int, model: str, extra: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for attempt in range(n):  # a server that ignores `n` answers one at a time: ask again for the rest
            want = n - len(out)
            if want > 1 and (self._single_n or (self.max_n and want > self.max_n)):
                answers = await asyncio.gather(*(self._ask(rendered, 1, seed + attempt * n + i, model, extra)
                                                 for i in range(want)))
                texts = [t for a in answers for t in a]
            else:
                try:
                    texts = await self._ask(rendered, want, seed + attempt, model, extra)
                except _RefusedN:
                    with self._lock:
                        first, self._single_n = not self._single_n, True
                    if first:  # concurrent prompts may all meet the refusal: say it once
                        self._note(f"{self.api_base} refuses n > 1: sending single requests from now on")
                    continue
            out.extend(as_candidate(rendered, t) for t in texts)
            if len(out) >= n or not texts:
                break
        return (out + [""] * n)[:n]  # missing samples are empty: rejected as such

    async def _ask(self, rendered: Rendered, n: int, seed: int, model: str, extra: Mapping[str, Any]) -> list[str]:
        """Send one request for `n` samples and return their texts."""
        body: dict[str, Any] = {
            "model": model, "n": n, "max_tokens": self.sampling.max_tokens, "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p, "seed": seed, "stream_options": {"include_usage": True},
            **extra,
        }
        if rendered.messages:
            body["messages"] = list(rendered.messages)
            data = await self._post("/chat/completions", body)
            texts = [(c.get("message") or {}).get("content") or "" for c in data.get("choices", [])]
        else:
            body["prompt"], body["stop"] = rendered.text, list(self.sampling.stop)
            data = await self._post("/completions", body)
            texts = [c.get("text") or "" for c in data.get("choices", [])]
        with self._lock:
            self.generated_tokens += int((data.get("usage") or {}).get("completion_tokens") or 0)
        return texts

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST (streamed) with retries on 429/5xx/stalls/connection errors; raise ProposerError on anything else."""
        url = self.api_base + path
        backoff = self.config.backoff_s
        assert self._client is not None and self._runner is not None
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.concurrency)
        for attempt in range(self.config.retries + 1):
            last = attempt == self.config.retries
            try:
                async with self._slots:
                    reply = await post_streamed(self._client, url, body, self._headers, self._watch)
            except (Stalled, httpx.TransportError) as exc:
                what = f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.TransportError) else str(exc)
                if last:
                    raise ProposerError(f"{url}: {what} (after {attempt + 1} attempts)") from exc
                delay = backoff
                self._note(f"{url}: {what}; retrying in {delay:.1f}s")
            else:
                if reply.status == 200:
                    return reply.data
                message = _error_message(reply)
                if reply.status == 400 and _N_REFUSED.search(message) and body.get("n", 1) > 1:
                    raise _RefusedN(message)
                if reply.status not in RETRY_STATUS:
                    raise ProposerError(f"{url}: HTTP {reply.status}: {_explained(message, reply, self.sampling)}")
                if last:
                    raise ProposerError(f"{url}: HTTP {reply.status} after {attempt + 1} attempts: {message}")
                delay = _retry_after(reply, backoff)
                log.warning("%s: HTTP %d (%s); retrying in %.1fs", url, reply.status, message, delay)
            await asyncio.sleep(delay)
            backoff *= 2
        raise AssertionError("unreachable")

    async def _load_lora(self, served: str, path: Path) -> None:
        assert self._client is not None
        url = self.api_base + "/load_lora_adapter"
        try:
            response = await self._client.post(url, json={"lora_name": served, "lora_path": str(path.resolve())},
                                               headers=self._headers, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise ProposerError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:  # vLLM answers in plain text
            raise ProposerError(f"{url}: HTTP {response.status_code}: {response.text[:200].strip()}")

    def _note(self, message: str) -> None:
        log.warning("%s", message)
        with self._lock:
            self._notices.append(message)


class _RefusedN(Exception):
    """The server refused n > 1."""


def _error_message(reply: Reply) -> str:
    """Return the server's own words: OpenAI's {"error": {"message": ...}}, else the start of the body."""
    try:
        data = json.loads(reply.text)
    except ValueError:
        return reply.text[:200].strip() or f"status {reply.status}"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return str(data)[:200]


MAX_RETRY_AFTER_S = 120.0  # a server that asks for longer (an hour, a date) would stall the run: wait this, retry


def _retry_after(reply: Reply, default: float) -> float:
    """Return the seconds a 429/503 asks us to wait (Retry-After in seconds), at most MAX_RETRY_AFTER_S."""
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(dict(reply.headers or {}).get("retry-after", ""))))
    except ValueError:  # absent, or an HTTP date
        return default


def _explained(message: str, reply: Reply, sampling: SamplingConfig) -> str:
    """Say what a refusal means when it is the context size: the prompt's tokens and the server's limit."""
    try:
        error = json.loads(reply.text).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict) and "n_prompt_tokens" in error and "n_ctx" in error:
        return (f"the prompt has {error['n_prompt_tokens']} tokens and the server's context per request is "
                f"{error['n_ctx']} (with max_tokens {sampling.max_tokens} to generate): show fewer parents "
                "(islands.functions_per_prompt) or give the server a larger context")
    return message
