"""Preference training of a round with TRL's DPOTrainer (the `dpo` extra: pip install 'evoloop[dpo]').

Configured, not subclassed: a `DPOConfig` plus a `LoraConfig` on every linear
layer (or the parent round's adapter, continued; TRL then keeps a frozen
copy of it as the reference). Prompts are cut from the left beforehand so
that the end of the prompt (the header to continue) and both completions
always fit in `finetune.max_length` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.data import Pair
from finetune.request import FinetuneError, RoundRequest, lora_config

DPO_HINT = "--method dpo needs TRL: pip install 'evoloop[dpo]'"


def train_dpo(model: Any, tokenizer: Any, pairs: Sequence[Pair], request: RoundRequest, work: Path) -> tuple[Any, list[float], int]:
    """Train the round's adapter on (prompt, chosen, rejected); return the model, the loss per step and the steps."""
    try:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer
    except ImportError as exc:
        raise FinetuneError(DPO_HINT) from exc
    from peft import PeftModel

    c = request.config
    rows = [_fitted(tokenizer, p, c.max_length) for p in pairs]
    args = DPOConfig(
        output_dir=str(work), max_steps=c.steps, per_device_train_batch_size=c.batch_size, learning_rate=c.learning_rate,
        lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=c.device == "cpu", seed=request.round, max_length=None, beta=0.1,
    )
    peft_config = None
    if request.parent:
        model = PeftModel.from_pretrained(model, request.parent, is_trainable=True)
    else:
        peft_config = lora_config(c)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.train()
    model = trainer.model
    if "ref" in model.peft_config:  # TRL's frozen reference copy: not part of the round's adapter
        model.set_adapter("default")
        model.delete_adapter("ref")
    curve = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return model, curve, int(trainer.state.global_step)


def _fitted(tokenizer: Any, pair: Pair, max_length: int) -> dict[str, str]:
    """Cut the prompt from the left so that it and the longer completion fit in `max_length` tokens."""
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (pair.chosen, pair.rejected)) + 1
    prompt = tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
    room = max(1, max_length - longest)
    text = pair.prompt if len(prompt) <= room else tokenizer.decode(prompt[-room:])
    return {"prompt": text, "chosen": pair.chosen, "rejected": pair.rejected}
