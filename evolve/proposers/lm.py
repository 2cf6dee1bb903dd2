"""What the language-model proposers share: sampling settings and turning answers into candidates.

The configs of the three backends live here too (not in their modules) so
that reading a run's configuration never imports httpx, torch or vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evolve.errors import require
from evolve.prompt import FORMATS, PromptFormat, Rendered

# Where a completion model should stop: the end of the function it writes.
DEFAULT_STOP = ("\ndef ", "\nclass ", "\n@", "\nif __name__", "\n```")


@dataclass(frozen=True)
class SamplingConfig:
    """How every language-model proposer samples (FunSearch's published defaults)."""

    format: PromptFormat = "completion"  # "completion" (base models), "chat" (instruct), "diff" (search/replace)
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 512  # per sample
    stop: tuple[str, ...] = DEFAULT_STOP  # completion format only: where a sample ends

    def __post_init__(self) -> None:
        require(self.format in FORMATS, f"sampling.format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        require(self.temperature >= 0 and 0 < self.top_p <= 1, "sampling.temperature must be >= 0 and sampling.top_p in (0, 1]")
        require(self.max_tokens >= 1, f"sampling.max_tokens must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class OpenAIConfig:
    """An OpenAI-compatible server (`vllm serve`, llama.cpp's server, Ollama, ...).

    The API key is never stored in the run: it comes from `--api-key`,
    `$EVOLVE_API_KEY` or `$OPENAI_API_KEY` at each start.
    """

    api_base: str = ""  # e.g. http://127.0.0.1:8000/v1; "" reads $EVOLVE_API_BASE, then $OPENAI_BASE_URL
    model: str = ""  # the server's model name; "" reads $EVOLVE_MODEL
    concurrency: int = 8  # requests in flight at once
    timeout_s: float = 300.0  # per request, the whole answer
    # A streamed answer silent this long is a stall (retried): once bytes came, at once; before the first byte
    # (a long prompt), only if the server's health check does not answer either.
    stall_s: float = 30.0
    health_path: str = "/health"  # on the server's root (llama.cpp, vLLM); "" : no health probe
    retries: int = 5  # on 429, 5xx, stalls and connection errors, with exponential backoff
    backoff_s: float = 1.0  # first wait; doubles each retry (a Retry-After header wins)

    def __post_init__(self) -> None:
        require(self.concurrency >= 1 and self.retries >= 0, "openai.concurrency must be >= 1 and openai.retries >= 0")
        require(self.timeout_s > 0 and self.backoff_s >= 0, "openai.timeout_s must be > 0 and openai.backoff_s >= 0")
        require(0 < self.stall_s <= self.timeout_s, "openai.stall_s must be > 0 and at most openai.timeout_s")


@dataclass(frozen=True)
class LlamaCppConfig:
    """A GGUF model served by llama.cpp on this machine, started and stopped with the run (the `llamacpp` extra)."""

    model: str = "gemma-3-270m"  # a GGUF file, or a known model's name (`evolve models list`), assembled once
    adapter: str = ""  # a PEFT LoRA adapter directory to start with ("" for none); converted to GGUF for llama.cpp
    slots: int = 4  # requests decoded at once (llama.cpp's n_parallel); samples_per_prompt above it go one by one
    ctx_per_slot: int = 4096  # tokens of context per slot: the longest prompt plus sampling.max_tokens
    threads: int = 0  # decoding threads; 0: the cores not given to sandbox workers (at least 1)
    # "auto": chat for a model whose GGUF file has a chat template, completion for a base model; or a
    # sampling format ("completion", "chat", "diff") that overrides sampling.format for this proposer.
    format: str = "auto"
    stall_s: float = 60.0  # a streamed answer silent this long is a stall (retried; see openai.stall_s)
    timeout_s: float = 600.0  # per request, the whole answer (a loaded CPU is slow)
    retries: int = 3

    def __post_init__(self) -> None:
        require(bool(self.model), "llamacpp.model: a GGUF file or a known model's name is needed")
        require(self.slots >= 1 and self.ctx_per_slot >= 256, "llamacpp.slots must be >= 1 and ctx_per_slot >= 256")
        require(self.threads >= 0 and self.retries >= 0, "llamacpp.threads and llamacpp.retries must be >= 0")
        require(self.format == "auto" or self.format in FORMATS,
                f"llamacpp.format must be auto or one of {', '.join(FORMATS)}, got {self.format!r}")
        require(0 < self.stall_s <= self.timeout_s, "llamacpp.stall_s must be > 0 and at most llamacpp.timeout_s")


@dataclass(frozen=True)
class TransformersConfig:
    """A local checkpoint directory run with Hugging Face transformers (CPU or GPU)."""

    model: str = ""  # a directory with config.json, weights and tokenizer (nothing is downloaded)
    adapter: str = ""  # a PEFT adapter directory loaded on top ("" for none)
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (cuda when available)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: float32 on CPU, bfloat16 on GPU
    batch_size: int = 8  # prompts per generate() call (each with n samples)
    # torch's CPU threads (0: torch's default, one per core). The sandbox workers share those cores: on a
    # busy CPU machine 1 or 2 is much faster than the default, whose threads spin against the workers.
    threads: int = 0

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, f"transformers.batch_size must be >= 1, got {self.batch_size}")
        require(self.threads >= 0, f"transformers.threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class VLLMConfig:
    """An in-process vLLM engine on the GPU (needs the `gpu` extra)."""

    model: str = ""  # a hub name or a local directory
    adapter: str = ""  # a LoRA adapter directory to start with ("" for none)
    enable_lora: bool = True  # lets a new adapter be switched in without a restart
    max_lora_rank: int = 64
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None  # None: the model's own
    dtype: str = "auto"

    def __post_init__(self) -> None:
        require(self.tensor_parallel_size >= 1, "vllm.tensor_parallel_size must be >= 1")
        require(0 < self.gpu_memory_utilization <= 1, "vllm.gpu_memory_utilization must lie in (0, 1]")


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Cut a completion at the first stop sequence (for backends that do not stop by themselves)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def as_candidate(rendered: Rendered, answer: str) -> str:
    """Return a whole candidate: a completion model's body goes under its header."""
    return rendered.prefix + answer if rendered.prefix else answer
