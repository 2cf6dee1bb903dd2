"""Training data and adapters for the proposer, built from a run archive.

Reads the archive (never writes it) and never blocks the loop. This first
version extracts supervised records of improvements; training LoRA adapters
and the adapter registry build on it.
"""

from finetune.dataset import SFTRecord, sft_records, write_jsonl

__all__ = ["SFTRecord", "sft_records", "write_jsonl"]
