"""A proposer over a local checkpoint with Hugging Face transformers (CPU or GPU).

    evolve run bin_packing_or --proposer transformers --model ./my-checkpoint

The model (and a PEFT adapter on top, when given) loads on the first
`propose`, from local files only: nothing is downloaded. Prompts are
batched (`transformers.batch_size` per `generate` call, `n` samples each,
left padding). The chat and diff formats need a tokenizer with a chat
template. `use_adapter(DIR)` loads a new LoRA adapter onto the model in
memory (the previous one is dropped) for the next batch, with an optional
control share of prompts answered with the adapter disabled. Needs the
`lm` extra (torch, transformers, peft).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evolve.prompt import Rendered, render
from evolve.proposers.base import Origin, Prompt, ProposerError
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
        self.control_share = 0.0  # of the prompts answered without the adapter (the evidence's control arm)
        self._adapters = 0  # adapters loaded so far: each gets its own PEFT name

    def use_adapter(self, path: str | Path, name: str | None = None, control_share: float = 0.0) -> None:
        """Sample from the LoRA adapter at `path` from the next batch on, loaded onto the model in memory.

        `control_share` of the prompts (drawn per batch, seeded) are still
        answered by the base model, with the adapter disabled, and recorded
        without it: the figures an adapter is judged against.
        """
        path = Path(path)
        if not (path / "adapter_config.json").is_file():
            raise ProposerError(f"{path} is not a LoRA adapter directory (no adapter_config.json)")
        self.adapter, self.control_share = str(path), control_share
        if self._loaded is None:
            return  # loaded with the model on the first propose
        torch, model, tokenizer = self._loaded
        self._loaded = (torch, self._with_adapter(model), tokenizer)
        log.info("switched to the adapter %s (control share %.2f)", self.adapter, control_share)

    def propose_attributed(self, prompts: Sequence[Prompt], n: int) -> list[tuple[Origin, list[str]]]:
        """Answer most prompts with the adapter and `control_share` of them with the base model."""
        tuned = Origin(self.name, self.model, self.adapter)
        if not self.adapter or self.control_share <= 0:
            return [(tuned, texts) for texts in self.propose(prompts, n)]
        draw = np.random.default_rng([self.seed, self._calls, 0x626173]).random(len(prompts))  # "bas": its own stream
        control = [i for i in range(len(prompts)) if draw[i] < self.control_share]
        rest = [i for i in range(len(prompts)) if draw[i] >= self.control_share]
        out: list[tuple[Origin, list[str]] | None] = [None] * len(prompts)
        for indices, base_only in ((rest, False), (control, True)):
            answers = self.propose([prompts[i] for i in indices], n, base_only=base_only)
            for i, texts in zip(indices, answers, strict=True):
                out[i] = (Origin(self.name, self.model, "") if base_only else tuned, texts)
        return [o for o in out if o is not None]

    def propose(self, prompts: Sequence[Prompt], n: int, base_only: bool = False) -> list[list[str]]:
        """Return `n` samples per prompt, `batch_size` prompts per generate() call (`base_only`: adapter off)."""
        out: list[list[str]] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            out.extend(self._generate([render(p, self.sampling.format) for p in prompts[start : start + size]], n, base_only))
        return out

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
        off = model.disable_adapter() if base_only and hasattr(model, "disable_adapter") else contextlib.nullcontext()
        with torch.no_grad(), off:
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
