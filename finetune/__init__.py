"""LoRA rounds on a run's best programs, trained while the run searches.

- `finetune.data`: the training data, read from the archive (SFT examples, preference pairs, JSONL).
- `finetune.train`: one round in its own process (`python -m finetune.train ROUND.json`).
- `finetune.rounds`: the loop's helper that starts, polls, records and applies rounds; `evolve finetune`.
- `finetune.registry`: the `adapters` table and the evidence of what each round did.

Reads the archive (the loop alone writes it) and never blocks the loop.
Nothing here imports torch until a round trains.
"""
