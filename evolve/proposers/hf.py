"""A proposer over a local checkpoint with Hugging Face transformers (CPU or GPU).

    evolve run bin_packing_or --proposer transformers --model ./my-checkpoint

The model (and a PEFT adapter on top, when given) loads on the first
`propose`, from local files only: nothing is downloaded. Prompts are
batched (`transformers.batch_size` per `generate` call, `n` samples each,
left padding). The chat and diff formats need a tokenizer with a chat
template. Needs the `lm` extra (torch, transformers, peft).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolve.prompt import Rendered, render
from evolve.proposers.base import Prompt, ProposerError
from evolve.proposers.lm import SamplingConfig, TransformersConfig, as_candidate, cut_at_stop

log = logging.getLogger(__name__)
INSTALL_HINT = "install the lm extra: pip install torch==2.13.0 && pip install 'evoloop[lm]'"


class TransformersProposer:
    """Sample candidates from a local causal LM, batched, on CPU or GPU."""

    name = "transformers"

    def __init__(self, config: TransformersConfig, sampling: SamplingConfig, seed: int) -> None:
        from evolve.config import ConfigError

        if not config.model:
            raise ConfigError("the transformers proposer needs --model DIR (a local checkpoint directory)")
        if not Path(config.model).is_dir():
            raise ConfigError(f"transformers.model: {config.model} is not a directory (nothing is downloaded)")
        if config.adapter and not (Path(config.adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"transformers.adapter: {config.adapter} has no adapter_config.json")
        self.config, self.sampling, self.seed = config, sampling, seed
        self.model = str(config.model)
        self.adapter = str(config.adapter)
        self.generated_tokens = 0
        self._calls = 0
        self._loaded: tuple[Any, Any, Any] | None = None  # (torch, model, tokenizer), built on first use

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        """Return `n` samples per prompt, `batch_size` prompts per generate() call."""
        out: list[list[str]] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            out.extend(self._generate([render(p, self.sampling.format) for p in prompts[start : start + size]], n))
        return out

    def _generate(self, rendered: list[Rendered], n: int) -> list[list[str]]:
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
        with torch.no_grad():
            ids = model.generate(
                **enc, do_sample=self.sampling.temperature > 0, temperature=self.sampling.temperature or None,
                top_p=self.sampling.top_p, max_new_tokens=self.sampling.max_tokens, num_return_sequences=n,
                pad_token_id=tokenizer.pad_token_id,
            )  # (len(texts) * n, prompt length + new tokens)
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
        try:
            return PeftModel.from_pretrained(model, self.adapter, is_trainable=False)
        except (OSError, ValueError) as exc:
            raise ProposerError(f"cannot load the adapter {self.adapter}: {exc}") from exc


def _context_length(model: Any) -> int:
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4096
