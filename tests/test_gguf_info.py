"""The GGUF header reader: the real model's metadata and tensors, and clear refusals of other files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from evolve.gguf_info import GGUFError, is_gguf, read_header
from llm_fixtures import gemma_gguf, model_cache  # noqa: F401  (session fixtures)


def test_the_real_models_header(gemma_gguf: Path) -> None:  # noqa: F811
    started = time.monotonic()
    h = read_header(gemma_gguf)
    assert time.monotonic() - started < 5  # gguf.GGUFReader takes ~14 s here; the point of this module
    assert (h.version, h.architecture, h.file_type, h.chat_template) == (3, "gemma3", "model", "")
    assert h.arch_value("block_count") == 18 and h.array_lengths["tokenizer.ggml.tokens"] == 262_144
    assert len(h.tensors) == 236
    assert h.tensors["blk.0.attn_q.weight"].shape == (640, 1024)  # ggml order: in_features first


def test_a_file_written_by_gguf_py(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type("adapter")
    w.add_string("tokenizer.chat_template", "{{ messages }}")
    w.add_array("tags", ["a", "bc"])
    w.add_float32("adapter.lora.alpha", 16.0)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = read_header(path)
    assert (h.architecture, h.file_type, h.chat_template) == ("llama", "adapter", "{{ messages }}")
    assert h.metadata["adapter.lora.alpha"] == 16.0 and h.array_lengths["tags"] == 2
    assert h.tensors["blk.0.attn_q.weight.lora_a"].shape == (32, 4)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "cannot read"),
    (b"PK\x03\x04 a zip file", "not a GGUF file"),
    (b"GGUF\x03\x00\x00\x00\x01", "truncated or corrupt"),
])
def test_other_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "f.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_header(path)
    assert is_gguf(path) == content.startswith(b"GGUF")
