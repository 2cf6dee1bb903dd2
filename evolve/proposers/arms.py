"""What every language-model proposer shares: the adapter in use and the base model's control arm.

    proposer = LMProposer("transformers", backend, seed)   # backend: the model half (hf, vllm, openai, llamacpp)
    proposer.use_adapter("runs/r-adapters/round_1", control_share=0.1)
    proposer.propose(prompts, n)    # ~90% of prompts with the adapter, ~10% with the base model, each recorded so

A backend only generates: `generate(prompts, n, adapter=True)` samples
from the adapter it last loaded, `adapter=False` from the base model. The
split of a batch between the two arms is drawn here, once per `propose`
call, from a stream of its own (seeded by the run's seed and the call
count), so that every backend splits the same way and a run stays
reproducible. The programs of the control arm are the figures an adapter
is judged against (finetune.registry).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from evolve.proposers.base import AdapterUser, Origin, Prompt, Proposal, ProposerError

_CONTROL_STREAM = 0x626173  # "bas": the control arm's draws, apart from every other stream of the run


def adapter_dir(path: str | Path) -> Path:
    """Return `path` if it is a PEFT LoRA adapter directory, else raise ProposerError saying why not."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ProposerError(f"{path} is not a LoRA adapter directory (no adapter_config.json)")
    return path


class Backend(Protocol):
    """The model half of a language-model proposer."""

    model: str  # recorded with every program

    @property
    def generated_tokens(self) -> int: ...

    def generate(self, prompts: Sequence[Prompt], n: int, adapter: bool) -> list[list[str]]:
        """Return `n` candidate sources per prompt, from the loaded adapter (`adapter`) or from the base model."""
        ...

    def load_adapter(self, path: Path) -> None:
        """Make the adapter at `path` the one `generate(..., adapter=True)` samples from (ProposerError if it cannot)."""
        ...

    def interrupt(self) -> None:
        """Make the `generate` in progress raise ProposerInterrupted soon (from another thread)."""
        ...

    def notices(self) -> list[str]:
        """Return and forget what was handled since the last call (a stall retried, a fallback taken)."""
        ...

    def close(self) -> None: ...


class LMProposer:
    """A Proposer over any language-model backend, with the adapter/control-arm split."""

    def __init__(self, name: str, backend: Backend, seed: int, adapter: str = "") -> None:
        self.name, self.backend, self.seed = name, backend, seed
        self.model = backend.model
        self.adapter = ""  # the adapter directory in use ("" : the base model only)
        self.control_share = 0.0  # of the prompts answered by the base model once an adapter is in use
        self._calls = 0
        if adapter:
            self.use_adapter(adapter)

    @property
    def generated_tokens(self) -> int:
        return self.backend.generated_tokens

    def use_adapter(self, path: str, control_share: float = 0.0) -> None:
        """Sample from the adapter at `path` from the next batch on; `control_share` of prompts stay with the base."""
        directory = adapter_dir(path)
        self.backend.load_adapter(directory)
        self.adapter, self.control_share = str(directory), control_share

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[Proposal]:
        """Answer each prompt with the adapter or (a `control_share` of them) the base model, in the prompts' order."""
        self._calls += 1
        tuned = np.ones(len(prompts), dtype=bool)
        if self.adapter and self.control_share > 0:
            draw = np.random.default_rng([self.seed, self._calls, _CONTROL_STREAM]).random(len(prompts))
            tuned = draw >= self.control_share
        elif not self.adapter:
            tuned[:] = False
        out: list[Proposal | None] = [None] * len(prompts)
        for arm in (True, False):
            indices = [i for i in range(len(prompts)) if tuned[i] == arm]
            if not indices:
                continue
            origin = Origin(self.name, self.model, self.adapter if arm else "")
            answers = self.backend.generate([prompts[i] for i in indices], n, adapter=arm)
            for i, texts in zip(indices, answers, strict=True):
                out[i] = Proposal(origin, texts)
        return [p for p in out if p is not None]

    def adapter_users(self) -> Sequence[AdapterUser]:
        return (self,)

    def interrupt(self) -> None:
        self.backend.interrupt()

    def notices(self) -> list[str]:
        return self.backend.notices()

    def close(self) -> None:
        self.backend.close()
