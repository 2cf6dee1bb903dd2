"""The `[finetune]` part of a run's configuration: when rounds start and how they train.

    [finetune]
    every = 500        # start a round every 500 evaluated programs (0: never)
    method = "sft"
    steps = 60

It imports nothing heavy: reading a run's configuration never loads torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evolve.errors import require

Method = Literal["sft", "dpo"]


@dataclass(frozen=True)
class FinetuneConfig:
    """LoRA rounds trained on the run's best programs while it searches."""

    every: int = 0  # start a round every N evaluated programs (0: no rounds during the run)
    method: Method = "sft"  # "sft" (prompt -> improving completion) or "dpo" (better vs worse, needs trl)
    base: str = ""  # the base checkpoint to train ("" : the run's transformers/vllm model)
    out_dir: str = ""  # where adapters/round_k go ("" : DB's folder, <db stem>-adapters/)
    top_share: float = 0.25  # of the valid scores in each window between rounds
    cap: int = 512  # most examples (or pairs) per round, the best kept
    # sft: only completions that beat their best parent; false: every valid program in the top share (a weak
    # model that rarely improves, e.g. a 270M one, then still learns to write valid functions for the problem)
    improving_only: bool = True
    pairs_per_prompt: int = 4  # dpo: most (chosen, rejected) pairs per prompt
    steps: int = 60  # optimizer steps per round
    batch_size: int = 4
    learning_rate: float = 1e-3
    rank: int = 8  # LoRA rank
    alpha: int = 16  # LoRA alpha
    max_length: int = 1024  # tokens per example; the prompt is cut from the left
    device: str = "cpu"  # where a round trains: "cpu", "cuda", "cuda:1"
    threads: int = 1  # torch CPU threads of the training process (the sandbox needs the rest)
    control_share: float = 0.1  # of an adapter's prompts still answered by the base model: the evidence's control arm
    wait_at_end_s: float = 600.0  # a run that ends its budget waits this long for the round in flight

    def __post_init__(self) -> None:
        require(self.every >= 0, f"finetune.every must be >= 0, got {self.every}")
        require(self.method in ("sft", "dpo"), f"finetune.method must be 'sft' or 'dpo', got {self.method!r}")
        require(0 < self.top_share <= 1, f"finetune.top_share must lie in (0, 1], got {self.top_share}")
        require(self.cap >= 1 and self.pairs_per_prompt >= 1, "finetune.cap and finetune.pairs_per_prompt must be >= 1")
        require(self.steps >= 1 and self.batch_size >= 1, "finetune.steps and finetune.batch_size must be >= 1")
        require(self.learning_rate > 0 and self.rank >= 1 and self.alpha >= 1, "finetune.learning_rate, rank and alpha must be > 0")
        require(self.max_length >= 16 and self.threads >= 1, "finetune.max_length must be >= 16 and finetune.threads >= 1")
        require(0 <= self.control_share < 1, f"finetune.control_share must lie in [0, 1), got {self.control_share}")
        require(self.wait_at_end_s >= 0, "finetune.wait_at_end_s must be >= 0")
