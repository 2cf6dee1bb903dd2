"""A proposer over a local checkpoint with Hugging Face transformers (CPU or GPU).

    evolve run bin_packing_or --proposer transformers --model ./my-checkpoint

The model (and a PEFT adapter on top, when given) loads on the first
`propose`, from local files only: nothing is downloaded. Prompts are
batched (`transformers.batch_size` per `generate` call, `n` samples each,
left padding). The chat and diff formats need a tokenizer with a chat
template. A new LoRA adapter is loaded onto the model in memory (the
previous one is dropped) for the next batch; the control arm's prompts are
answered with the adapter disabled (evolve.proposers.arms). Needs the `lm`
extra (torch, transformers, peft).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolve.errors import ConfigError
from evolve.prompt import Rendered, render
from evolve.proposers.arms import LMProposer, adapter_dir
from evolve.proposers.base import Prompt, ProposerError, ProposerInterrupted
from evolve.proposers.lm import SamplingConfig, TransformersConfig, as_candidate, cut_at_stop

log = logging.getLogger(__name__)
INSTALL_HINT = "install the lm extra: pip install torch==2.13.0 && pip install 'evoloop[lm]'"


def transformers_proposer(config: TransformersConfig, sampling: SamplingConfig, seed: int) -> LMProposer:
    """Return the `transformers` proposer: a local checkpoint (and adapter) run with Hugging Face transformers."""
    if not config.model:
        raise ConfigError("the transformers proposer needs --model DIR (a local checkpoint directory)")
    if not Path(config.model).is_dir():
        raise ConfigError(f"transformers.model: {config.model} is not a directory (nothing is downloaded)")
    if config.adapter:
        try:
            adapter_dir(config.adapter)
        except ProposerError as exc:
            raise ConfigError(f"transformers.adapter: {exc}") from None
    return LMProposer("transformers", TransformersBackend(config, sampling, seed), seed, adapter=config.adapter)


class TransformersBackend:
    """Sample candidates from a local causal LM, batched, on CPU or GPU (the model half of the proposer)."""

    def __init__(self, config: TransformersConfig, sampling: SamplingConfig, seed: int) -> None:
        self.config, self.sampling, self.seed = config, sampling, seed
        self.model = str(config.model)
        self.adapter = ""  # the adapter directory loaded (or to load with the model)
        self.generated_tokens = 0
        self._calls = 0  # generate() calls: each reseeds torch, so sampling is reproducible per call
        self._loaded: tuple[Any, Any, Any] | None = None  # (torch, model, tokenizer), built on first use
        self._adapters = 0  # adapters loaded so far: each gets its own PEFT name
        self._interrupted = threading.Event()

    def load_adapter(self, path: Path) -> None:
        """Load the LoRA adapter at `path` onto the model in memory (dropping the previous one)."""
        self.adapter = str(path)
        if self._loaded is None:
            return  # loaded with the model on the first batch
        torch, model, tokenizer = self._loaded
        self._loaded = (torch, self._with_adapter(model), tokenizer)
        log.info("switched to the adapter %s", self.adapter)

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool) -> list[list[str]]:
        """Return `n` samples per prompt, `batch_size` prompts per generate() call (the adapter off unless `adapter`)."""
        self._interrupted.clear()
        out: list[list[str]] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            rendered = [render(p, self.sampling.format) for p in prompts[start : start + size]]
            out.extend(self._generate(rendered, n, base_only=not adapter))
        return out

    def interrupt(self) -> None:
        """End the generate() in progress after its current decoding step (then ProposerInterrupted)."""
        self._interrupted.set()

    def notices(self) -> list[str]:
        return []

    def close(self) -> None:
        self._loaded = None

    def _generate(self, rendered: list[Rendered], n: int, base_only: bool = False) -> list[list[str]]:
        torch, model, tokenizer = self._load()
        texts = [r.text if not r.messages else self._chat_text(tokenizer, r) for r in rendered]
        room = _context_length(model) - self.sampling.max_tokens
        if room <= 0:
            raise ProposerError(f"{self.model}: its context ({_context_length(model)} tokens) leaves no room for max_tokens")
        # Left padding and left truncation: the end of each prompt (the header to continue) is what matters.
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=room)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        self._calls += 1
        torch.manual_seed(self.seed * 1_000_003 + self._calls)  # reproducible sampling per call
        off = model.disable_adapter() if base_only and self.adapter else contextlib.nullcontext()  # a PeftModel then
        with torch.no_grad(), off:
            ids = model.generate(
                **enc, do_sample=self.sampling.temperature > 0, temperature=self.sampling.temperature or None,
                top_p=self.sampling.top_p, max_new_tokens=self.sampling.max_tokens, num_return_sequences=n,
                pad_token_id=tokenizer.pad_token_id, stopping_criteria=[self._stop_when_interrupted],
            )  # (len(texts) * n, prompt length + new tokens)
        if self._interrupted.is_set():
            raise ProposerInterrupted("the batch was abandoned")
        new = ids[:, enc["input_ids"].shape[1] :]
        pad = tokenizer.pad_token_id
        self.generated_tokens += int((new != pad).sum()) if pad is not None else int(new.numel())
        decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
        out = []
        for i, r in enumerate(rendered):
            answers = decoded[i * n : (i + 1) * n]
            if not r.messages:
                answers = [cut_at_stop(a, self.sampling.stop) for a in answers]
            out.append([as_candidate(r, a) for a in answers])
        return out

    def _stop_when_interrupted(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        """A transformers stopping criterion, asked after every decoding step."""
        import torch

        return torch.full((input_ids.shape[0],), self._interrupted.is_set(), dtype=torch.bool, device=input_ids.device)

    @staticmethod
    def _chat_text(tokenizer: Any, rendered: Rendered) -> str:
        if not getattr(tokenizer, "chat_template", None):
            raise ProposerError("this tokenizer has no chat template: use sampling.format = \"completion\" with it")
        return str(tokenizer.apply_chat_template(list(rendered.messages), tokenize=False, add_generation_prompt=True))

    def _load(self) -> tuple[Any, Any, Any]:
        """Load the tokenizer, the model and the adapter (once)."""
        if self._loaded is not None:
            return self._loaded
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ProposerError(f"the transformers proposer needs torch and transformers ({exc.name} is missing): {INSTALL_HINT}") from exc
        hf_logging.disable_progress_bar()  # the CLI owns the console
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = self.config.dtype
        if dtype_name == "auto":
            dtype_name = "float32" if device == "cpu" else "bfloat16"
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model, local_files_only=True, padding_side="left", truncation_side="left")
            model = AutoModelForCausalLM.from_pretrained(self.model, local_files_only=True, dtype=getattr(torch, dtype_name))
        except (OSError, ValueError) as exc:
            raise ProposerError(f"cannot load the checkpoint {self.model}: {exc}") from exc
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.adapter:
            model = self._with_adapter(model)
        model.to(device).eval()
        log.info("loaded %s on %s (%s)%s", self.model, device, dtype_name, f" with adapter {self.adapter}" if self.adapter else "")
        self._loaded = (torch, model, tokenizer)
        return self._loaded

    def _with_adapter(self, model: Any) -> Any:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ProposerError(f"loading an adapter needs peft: {INSTALL_HINT}") from exc
        self._adapters += 1
        name = f"adapter_{self._adapters}"
        try:
            if isinstance(model, PeftModel):  # a switch during the run: load next to the old one, then drop it
                old = model.active_adapter
                model.load_adapter(self.adapter, adapter_name=name, is_trainable=False)
                model.set_adapter(name)
                model.delete_adapter(old)
                return model.eval()
            return PeftModel.from_pretrained(model, self.adapter, adapter_name=name, is_trainable=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ProposerError(f"cannot load the adapter {self.adapter}: {exc}") from exc


def _context_length(model: Any) -> int:
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4096
