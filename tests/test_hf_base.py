"""The transformers checkpoint made once from a GGUF file: where it goes, refusals, and (slow) what it holds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from finetune.hf_base import SOURCE_FILE, HFBaseError, hf_base_dir, hf_dir_for
from llm_fixtures import gemma_gguf, gemma_hf, model_cache, need_server  # noqa: F401  (session fixtures)


def test_placement_beside_a_cached_model_or_under_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    inside = cache / "gemma-3-270m" / "m.gguf"
    assert hf_dir_for(inside, cache) == cache / "gemma-3-270m" / "m.hf"
    elsewhere = hf_dir_for(tmp_path / "mine" / "m.gguf", cache)
    assert elsewhere.parent == cache / "hf" and elsewhere.name.startswith("m-")
    assert hf_dir_for(tmp_path / "other" / "m.gguf", cache) != elsewhere  # same stem, another file


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HFBaseError, match="does not exist"):
        hf_base_dir(tmp_path / "absent.gguf", tmp_path)


def test_a_gguf_transformers_cannot_read_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    pytest.importorskip("transformers")
    path = tmp_path / "tiny.gguf"  # a real GGUF file with no tokenizer in it
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(HFBaseError, match="transformers cannot load tiny.gguf") as err:
        hf_base_dir(path, tmp_path / "cache")
    assert "\n" not in str(err.value)
    assert [p.suffix for p in (tmp_path / "cache" / "hf").iterdir()] == [".lock"]  # no half-made checkpoint


@pytest.mark.slow
def test_the_checkpoint_is_made_once_and_tokenizes_as_llama_cpp(gemma_hf: Path, gemma_gguf: Path,  # noqa: F811
                                                                 model_cache: Path, need_server: None) -> None:  # noqa: F811
    from transformers import AutoTokenizer

    from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig

    assert {"config.json", "model.safetensors", "tokenizer.json", SOURCE_FILE} <= {p.name for p in gemma_hf.iterdir()}
    assert "quantization_config" not in json.loads((gemma_hf / "config.json").read_text())  # loads without dequantizing
    started = time.monotonic()
    assert hf_base_dir(gemma_gguf, model_cache) == gemma_hf
    assert time.monotonic() - started < 1.0
    text = "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    return -(bins - item)  # tight fit"
    hf_ids = AutoTokenizer.from_pretrained(gemma_hf)(text).input_ids
    with LlamaServer(LlamaServerConfig(model=str(gemma_gguf), threads=2, ctx_per_slot=256)) as s:
        lc_ids = httpx.post(s.base_url + "/tokenize", json={"content": text, "add_special": True}).json()["tokens"]
    assert hf_ids == lc_ids
