"""PEFT LoRA -> llama.cpp LoRA GGUF: the file's layout, refusals, and its effect inside the real llama.cpp server.

The fast tests use a PEFT-layout adapter written with numpy (no checkpoint
needed). The `slow` one trains nothing but needs the transformers
checkpoint made from the GGUF file (about 2 minutes the first time): it
checks that llama.cpp with the converted adapter moves the next-token
log-probabilities as transformers with the PEFT adapter does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from evolve.gguf_info import read_header
from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig, lora_field
from finetune.gguf_adapter import AdapterConversionError, convert_adapter
from llm_fixtures import gemma_gguf, gemma_hf, model_cache, need_server, synthetic_peft_adapter  # noqa: F401

gguf = pytest.importorskip("gguf")
pytest.importorskip("safetensors")

PROMPT = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Returns'


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Read a (small) GGUF file's tensors with gguf-py, in numpy's order."""
    return {t.name: np.array(t.data) for t in gguf.GGUFReader(str(path)).tensors}


def test_the_file_has_llama_cpps_adapter_layout(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    peft_dir = synthetic_peft_adapter(tmp_path / "adapter", layers=range(2), r=4, alpha=8)
    done = convert_adapter(peft_dir, gemma_gguf)
    assert done.path == peft_dir / "adapter_model.gguf" and (done.rank, done.alpha, done.pairs) == (4, 8.0, 14)
    assert done.kinds == ("attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up")
    h = read_header(done.path)
    assert (h.file_type, h.architecture, h.metadata["adapter.type"], h.metadata["adapter.lora.alpha"]) == \
        ("adapter", "gemma3", "lora", 8.0)
    assert h.tensors["blk.1.attn_q.weight.lora_a"].shape == (640, 4)  # ggml order: ne0 = in_features of W
    assert h.tensors["blk.1.attn_q.weight.lora_b"].shape == (4, 1024)  # ne1 = out_features of W
    from safetensors.numpy import load_file

    peft = load_file(str(peft_dir / "adapter_model.safetensors"))
    written = read_tensors(done.path)
    key = "base_model.model.model.layers.1.mlp.down_proj"
    np.testing.assert_array_equal(written["blk.1.ffn_down.weight.lora_a"], peft[key + ".lora_A.weight"])
    np.testing.assert_array_equal(written["blk.1.ffn_down.weight.lora_b"], peft[key + ".lora_B.weight"])
    assert not [p for p in peft_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_rslora_scaling_is_folded_into_b(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    plain = synthetic_peft_adapter(tmp_path / "plain", layers=range(1), modules=("self_attn.q_proj",), r=16)
    rs = synthetic_peft_adapter(tmp_path / "rs", layers=range(1), modules=("self_attn.q_proj",), r=16,
                                extra_config={"use_rslora": True})
    b_plain = read_tensors(convert_adapter(plain, gemma_gguf).path)["blk.0.attn_q.weight.lora_b"]
    b_rs = read_tensors(convert_adapter(rs, gemma_gguf).path)["blk.0.attn_q.weight.lora_b"]
    np.testing.assert_allclose(b_rs, b_plain * math.sqrt(16), rtol=1e-6)  # alpha/sqrt(r) = (alpha/r) * sqrt(r)


@pytest.mark.parametrize(("change", "message"), [
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"alpha_pattern": {"q_proj": 32}}, "alpha_pattern"),
    ({"bias": "all"}, "biases"),
    ({"peft_type": "IA3"}, "only LoRA"),
    ({"lora_alpha": 0}, "lora_alpha must be a positive"),
])
def test_unsupported_adapter_configs_are_refused(gemma_gguf: Path, tmp_path: Path,  # noqa: F811
                                                 change: dict[str, object], message: str) -> None:
    peft_dir = synthetic_peft_adapter(tmp_path / "a", layers=range(1), extra_config=change)
    with pytest.raises(AdapterConversionError, match=message) as err:
        convert_adapter(peft_dir, gemma_gguf)
    assert "\n" not in str(err.value) and not (peft_dir / "adapter_model.gguf").exists()


def test_embedding_lora_is_refused(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    from safetensors.numpy import load_file, save_file

    peft_dir = synthetic_peft_adapter(tmp_path / "a", layers=range(1), modules=("self_attn.q_proj",))
    tensors = load_file(str(peft_dir / "adapter_model.safetensors"))
    tensors["base_model.model.model.embed_tokens.lora_embedding_A"] = np.zeros((4, 262144), dtype=np.float32)
    save_file(tensors, str(peft_dir / "adapter_model.safetensors"))
    with pytest.raises(AdapterConversionError, match="not a LoRA A/B weight"):
        convert_adapter(peft_dir, gemma_gguf)


def test_an_adapter_for_another_model_is_refused(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    from safetensors.numpy import save_file

    peft_dir = synthetic_peft_adapter(tmp_path / "a", layers=range(1), modules=("self_attn.q_proj",))
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((4, 2048), np.float32),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.zeros((2048, 4), np.float32)},
              str(peft_dir / "adapter_model.safetensors"))
    with pytest.raises(AdapterConversionError, match="do not fit blk.0.attn_q.weight"):
        convert_adapter(peft_dir, gemma_gguf)


def test_an_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "llama.gguf"  # a real (tiny) GGUF model file of an architecture whose q/k GGUF permutes
    w = gguf.GGUFWriter(str(base), "llama")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    peft_dir = synthetic_peft_adapter(tmp_path / "a", layers=range(1), modules=("self_attn.q_proj",))
    with pytest.raises(AdapterConversionError, match="not supported for architecture 'llama'"):
        convert_adapter(peft_dir, base)


def top_logprobs(server: LlamaServer, scale: float | None, n: int = 10) -> dict[int, float]:
    """Return llama.cpp's next-token log-probabilities after PROMPT (top n), with the adapter at `scale`."""
    body: dict[str, object] = {"prompt": PROMPT, "n_predict": 1, "n_probs": n, "temperature": 0,
                               "cache_prompt": False}  # a reused prompt cache re-evaluates a few tokens: not bit-equal
    if scale is not None:
        body["lora"] = lora_field([scale])
    out = httpx.post(server.base_url + "/completion", json=body, timeout=120).json()
    return {t["id"]: t["logprob"] for t in out["completion_probabilities"][0]["top_logprobs"]}


@pytest.fixture(scope="module")
def base_server(gemma_gguf: Path, need_server: None) -> Iterator[LlamaServer]:  # noqa: F811
    with LlamaServer(LlamaServerConfig(model=str(gemma_gguf), threads=2, ctx_per_slot=256)) as s:
        yield s


def test_the_converted_adapter_moves_llama_cpp_and_scale_0_is_the_base(base_server: LlamaServer,
                                                                        tmp_path: Path) -> None:
    base = top_logprobs(base_server, None)
    peft_dir = synthetic_peft_adapter(tmp_path / "a", r=4, alpha=8, b_std=0.01)  # moves " highest" by ~0.6 nats
    adapter = convert_adapter(peft_dir, base_server.config.model).path
    with LlamaServer(base_server.config.with_lora([adapter])) as s:
        assert [a["path"] for a in s.lora_adapters()] == [str(adapter)]
        assert top_logprobs(s, 0.0) == base  # the control arm can share the adapter's server
        tuned = top_logprobs(s, 1.0)
        assert top_logprobs(s, None) == tuned  # the loaded scale (1.0) applies when a request names none
    shared = sorted(set(base) & set(tuned))
    assert len(shared) >= 3 and max(abs(tuned[t] - base[t]) for t in shared) > 0.1


@pytest.mark.slow
def test_llama_cpp_with_the_converted_adapter_agrees_with_peft(gemma_hf: Path, base_server: LlamaServer,  # noqa: F811
                                                               tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gemma_hf)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    model = AutoModelForCausalLM.from_pretrained(gemma_hf).eval()
    with torch.no_grad():
        hf_base = torch.log_softmax(model(ids).logits[0, -1], -1).numpy()
        peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # PEFT starts B at zero: a random B makes the adapter change the model
        hf_tuned = torch.log_softmax(peft_model(ids).logits[0, -1], -1).numpy()
    peft_model.save_pretrained(tmp_path / "peft")
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(gemma_hf)
    adapter = convert_adapter(tmp_path / "peft", base_server.config.model).path

    lc_base = top_logprobs(base_server, None, n=20)
    with LlamaServer(base_server.config.with_lora([adapter])) as s:
        assert top_logprobs(s, 0.0, n=20) == lc_base
        lc_tuned = top_logprobs(s, 1.0, n=20)
    shared = sorted(set(lc_base) & set(lc_tuned))
    d_lc = np.array([lc_tuned[t] - lc_base[t] for t in shared])
    d_hf = np.array([hf_tuned[t] - hf_base[t] for t in shared])
    assert len(shared) >= 5 and np.abs(d_hf).max() > 0.3  # the adapter moves the model noticeably
    assert np.corrcoef(d_lc, d_hf)[0, 1] > 0.9  # measured 0.95-0.99 here
    slope = float(d_lc @ d_hf / (d_hf @ d_hf))
    assert 0.7 < slope < 1.4, slope  # the same size of change: alpha/r is applied once, as in PEFT
    assert max(lc_tuned, key=lc_tuned.__getitem__) == int(hf_tuned.argmax())
