"""Train one LoRA round on a run's archive, in its own process.

    python -m finetune.train ROUND.json     # what the loop starts; `evolve finetune` calls train_round()

Reads the archive read-only, builds the round's data (`finetune.data`),
trains a LoRA adapter (peft, all linear layers, no extra saved modules, so
that vLLM serves it) on the base checkpoint (continuing the parent round's
adapter when there is one) by configuring transformers' `Trainer` (SFT) or
TRL's `DPOTrainer` (DPO, the `dpo` extra), and writes, atomically (a
temporary directory renamed at the end):

    OUT/adapter_config.json, adapter_model.safetensors   # what PeftModel and vLLM load
    OUT/meta.json     # base model, data size, loss curve, duration, parent, the losses below
    OUT/train.jsonl   # the round's data (prompt/completion or prompt/chosen/rejected)

`base_loss` and `adapter_loss` are the mean per-token loss of the selected
completions under the base model and under the trained adapter. Exit
status: 0 trained, 3 nothing to train on yet, 1 failed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolve.archive import Archive
from evolve.prompt import spec_preface
from evolve.recorded import recorded_spec
from finetune.config import FinetuneConfig
from finetune.data import Example, Pair, preference_pairs, sft_examples, write_jsonl
from finetune.dpo import train_dpo
from finetune.request import INSTALL_HINT, NO_DATA, FinetuneError, NoData, RoundRequest, lora_config

log = logging.getLogger(__name__)


def build_data(archive: Archive, config: FinetuneConfig) -> tuple[list[Example] | list[Pair], int]:
    """Return the round's records (cumulative over earlier rounds' windows) and the first sample they do not cover."""
    spec = recorded_spec(archive)
    until = archive.next_sample()
    edges = [0] + [r.data_until_sample for r in archive.adapters() if r.data_until_sample]
    preface = spec_preface(spec)
    if config.method == "dpo":
        return preference_pairs(archive, preface, spec.function_name, config.pairs_per_prompt, config.cap), until
    return sft_examples(archive, preface, spec.function_name, edges, config.top_share, config.cap,
                        config.improving_only), until


def train_round(request: RoundRequest) -> dict[str, Any]:
    """Build the data, train, write the adapter directory atomically; return its metadata."""
    started = time.monotonic()
    out = Path(request.out)
    if out.exists():
        raise FinetuneError(f"{out} already exists; pass another --out")
    archive = Archive.open(Path(request.db), readonly=True)
    try:
        records, until = build_data(archive, request.config)
    finally:
        archive.close()
    if not records:
        raise NoData(f"{request.db}: no program qualifies for {request.config.method} training yet")
    torch, model, tokenizer = _load(request)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_jsonl(records, tmp / "train.jsonl")
        if request.config.method == "dpo":
            pairs = [r for r in records if isinstance(r, Pair)]
            # The losses reported are those of the chosen completions.
            encoded = [_encode(tokenizer, Example(p.chosen_id, p.prompt, p.chosen, 0.0, 0.0, 0), request.config.max_length)
                       for p in pairs]
            base_loss = completion_loss(torch, model, tokenizer, encoded)
            model, curve, steps = train_dpo(model, tokenizer, pairs, request, tmp / "trainer")
            adapter_loss = completion_loss(torch, model, tokenizer, encoded)
        else:
            encoded = [_encode(tokenizer, e, request.config.max_length) for e in records if isinstance(e, Example)]
            base_loss = completion_loss(torch, model, tokenizer, encoded)
            model = _with_lora(model, request)
            curve, steps = _train_sft(torch, model, tokenizer, encoded, request, tmp / "trainer")
            adapter_loss = completion_loss(torch, model, tokenizer, encoded)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        meta = {
            "round": request.round, "path": str(out.resolve()), "method": request.config.method, "base_model": request.base,
            "examples": len(records), "steps": steps, "base_loss": base_loss, "adapter_loss": adapter_loss,
            "loss_curve": curve, "duration_s": time.monotonic() - started, "parent": request.parent,
            "data_until_sample": until, "program_ids": [getattr(r, "program_id", getattr(r, "chosen_id", None)) for r in records],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.rename(tmp, out)  # the round appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("round %d: %d examples, loss %.4g -> %.4g in %.1fs", request.round, len(records), base_loss, adapter_loss, meta["duration_s"])
    return meta


def completion_loss(torch: Any, model: Any, tokenizer: Any, encoded: Sequence[dict[str, list[int]]], batch: int = 8) -> float:
    """Return the mean per-token loss of the completions (the prompt tokens are masked)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(encoded), batch):
            inputs = collate(encoded[start : start + batch], tokenizer.pad_token_id, torch)
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits  # (B, T, V)
            labels = inputs["labels"][:, 1:]  # token t is predicted at t - 1
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(losses)
            count += int((labels != -100).sum())
    return total / max(count, 1)


def collate(rows: Sequence[dict[str, list[int]]], pad_id: int, torch: Any) -> dict[str, Any]:
    """Pad a batch on the right: input ids with the pad token, labels with -100 (ignored)."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = [r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows]
    labels = [r["labels"] + [-100] * (width - len(r["labels"])) for r in rows]
    mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def _encode(tokenizer: Any, example: Example, max_length: int) -> dict[str, list[int]]:
    """Tokenize prompt + completion + EOS; the prompt is cut from the left to fit and masked from the loss."""
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    completion = completion[: max_length // 2] if len(completion) > max_length // 2 else completion
    prompt = tokenizer(example.prompt, add_special_tokens=False)["input_ids"][-(max_length - len(completion)) :]
    return {"input_ids": prompt + completion, "labels": [-100] * len(prompt) + completion}


def _load(request: RoundRequest) -> tuple[Any, Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise FinetuneError(f"training an adapter needs torch, transformers and peft ({exc.name} is missing): {INSTALL_HINT}") from exc
    hf_logging.disable_progress_bar()
    torch.set_num_threads(request.config.threads)
    torch.manual_seed(request.round)
    device = request.config.device
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    checkpoint = _checkpoint(request.base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True, dtype=dtype).to(device)
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"cannot load the base checkpoint {request.base}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return torch, model, tokenizer


def _checkpoint(base: str) -> str:
    """Return the transformers checkpoint to train: `base` itself, or the one made (once, cached) from a GGUF file."""
    from evolve.gguf_info import is_gguf

    if not is_gguf(base):
        return base
    from finetune.hf_base import HFBaseError, hf_base_dir

    try:
        return str(hf_base_dir(base))  # the llamacpp proposer's model: the same weights, dequantized
    except HFBaseError as exc:
        raise FinetuneError(f"cannot train on {base}: {exc}") from exc


def _with_lora(model: Any, request: RoundRequest) -> Any:
    """Continue the parent round's adapter, or start a fresh LoRA on every linear layer."""
    from peft import PeftModel, get_peft_model

    if request.parent:
        return PeftModel.from_pretrained(model, request.parent, is_trainable=True)
    return get_peft_model(model, lora_config(request.config))


def _train_sft(torch: Any, model: Any, tokenizer: Any, encoded: list[dict[str, list[int]]], request: RoundRequest,
               work: Path) -> tuple[list[float], int]:
    """Train with transformers' Trainer, configured (not subclassed); return the loss per step and the steps."""
    from transformers import Trainer, TrainingArguments

    c = request.config
    args = TrainingArguments(
        output_dir=str(work), max_steps=c.steps, per_device_train_batch_size=c.batch_size, learning_rate=c.learning_rate,
        lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=c.device == "cpu", seed=request.round, dataloader_num_workers=0, remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encoded,
                      data_collator=lambda rows: collate(rows, tokenizer.pad_token_id, torch))
    trainer.train()
    curve = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return curve, int(trainer.state.global_step)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the round described by a JSON request file; the exit status says how it went."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m finetune.train ROUND.json", file=sys.stderr)
        return 2
    request = RoundRequest.from_json(json.loads(Path(args[0]).read_text()))
    try:
        train_round(request)
    except NoData as exc:
        log.warning("%s", exc)
        return NO_DATA
    return 0


if __name__ == "__main__":
    sys.exit(main())
