"""Build a tiny real causal LM in a directory: GPT-2 architecture, random weights, a BPE tokenizer trained on the spot.

Nothing is downloaded. Building takes well under a second once torch is
imported. `tiny_adapter` adds a random LoRA adapter made with peft.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT

EOS = "<|endoftext|>"


def tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write a 2-layer GPT-2 with random weights and its tokenizer into `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    corpus = [(ROOT / "evolve/problems/bin_packing_or.py").read_text(), (ROOT / "tests/data/funsearch_bin_packing.py").read_text()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=2048, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def tiny_adapter(model_dir: Path, directory: Path, seed: int = 1, random_b: bool = True) -> Path:
    """Write a LoRA adapter for the tiny model; with `random_b` it changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["c_attn"], init_lora_weights=not random_b, task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(directory)
    return directory


def teach(model_dir: Path, examples: list[tuple[str, str]], steps: int = 120, seed: int = 0) -> Path:
    """Train the tiny model in place, for a few seconds, to write each example's completion after its prompt.

    A model with random weights writes no parseable program; one taught a
    family of answers writes valid, varied ones, so a run can select among
    them and train on them.
    """
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    draw = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    encoded = [(tokenizer(p)["input_ids"], tokenizer(c)["input_ids"] + [tokenizer.eos_token_id]) for p, c in examples]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = [draw.choice(encoded) for _ in range(8)]
        loss = sum(
            model(input_ids=torch.tensor([p + c]), labels=torch.tensor([[-100] * len(p) + c])).loss for p, c in batch
        ) / len(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)
    return model_dir
