"""What one LoRA round is asked to do, and how a round fails: shared by the trainer, DPO and the loop's rounds.

    request = RoundRequest(db, base, out, round=3, parent=previous_adapter, config=config.finetune)
    python -m finetune.train ROUND.json       # the request, as JSON, is what the loop hands the trainer
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from finetune.config import FinetuneConfig

NO_DATA = 3  # the trainer's exit status when no program qualifies yet (not a failure)
INSTALL_HINT = "install the lm extra: pip install torch==2.13.0 && pip install 'evoloop[lm]'"


class FinetuneError(Exception):
    """A round that cannot train: no data, a missing extra, an unloadable checkpoint, an existing output."""


class NoData(FinetuneError):
    """No program qualifies for training yet."""


@dataclass(frozen=True)
class RoundRequest:
    """What one round trains: the archive, the base model, where the adapter goes, and how."""

    db: str
    base: str
    out: str  # the adapter directory to create (must not exist)
    round: int
    parent: str = ""  # the previous round's adapter, continued ("" : a fresh LoRA)
    config: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundRequest:
        return cls(**{**data, "config": FinetuneConfig(**data["config"])})


def lora_config(c: FinetuneConfig) -> Any:
    """Return the round's LoRA: every linear layer, no extra saved modules (what vLLM serves)."""
    from peft import LoraConfig  # the lm extra: imported only when a round trains

    return LoraConfig(r=c.rank, lora_alpha=c.alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
