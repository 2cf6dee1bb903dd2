"""Convert a PEFT LoRA adapter (trained on the checkpoint `finetune.hf_base` made) into a llama.cpp LoRA GGUF file.

    python -m finetune.gguf_adapter ADAPTER_DIR BASE.gguf [OUT.gguf]    # default OUT: ADAPTER_DIR/adapter_model.gguf

The format llama.cpp loads (``--lora``, xllamacpp's ``lora_adapters``):
``general.type = "adapter"``, ``adapter.type = "lora"``,
``general.architecture`` equal to the base model's, ``adapter.lora.alpha``,
and for each adapted weight ``W`` of the base file two tensors,
``<W's GGUF name>.lora_a`` and ``.lora_b``. llama.cpp adds
``scale * alpha / r * (B @ (A @ x))``, with r read from B's shape, which is
PEFT's ``lora_alpha / r`` scaling; so A (numpy shape (r, in)) and B
((out, r)) are written as PEFT stores them, not transposed. Where PEFT
scales otherwise (rsLoRA: alpha / sqrt(r)), the difference is folded into B.

Names come from gguf-py's tensor-name map for the base file's architecture
(``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q``), and every pair is
checked against the base file's tensor list and shapes, so an adapter for
another model fails here with one line instead of inside the server.

What is refused, clearly: DoRA, extra saved modules, trained biases,
embedding or output-layer LoRA, alpha patterns, and architectures where
the GGUF file stores linear weights differently from the transformers
checkpoint (llama's q/k are permuted, for example): supported are those in
`SUPPORTED_ARCHS`, whose attention and MLP weights are the same matrices in
both files (gemma3 is tested end to end against llama.cpp).

The file is written beside OUT under a temporary name, fsynced and renamed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve.gguf_info import GGUFError, GGUFHeader, read_header

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DEFAULT_NAME = "adapter_model.gguf"

# Architectures whose transformers loader (modeling_gguf_pytorch_utils) and llama.cpp converter leave the
# attention/MLP matrices unchanged (gemma's only rewrite the norms, which LoRA does not touch).
SUPPORTED_ARCHS = frozenset({"gemma3", "gemma2", "gemma", "qwen2", "qwen3"})
# GGUF tensor kinds an adapter may target: the linear layers of attention and MLP.
_LINEAR_KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "attn_qkv", "ffn_gate", "ffn_up", "ffn_down")
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")


class AdapterConversionError(Exception):
    """An adapter that cannot be converted to llama.cpp's format; one line for the CLI."""


@dataclass(frozen=True)
class ConvertedAdapter:
    """What `convert_adapter` wrote."""

    path: Path
    architecture: str
    rank: int  # the largest rank among the modules
    alpha: float  # adapter.lora.alpha
    pairs: int  # adapted weights (each a lora_a, lora_b pair)
    kinds: tuple[str, ...]  # which weights: ("attn_q", "ffn_down", ...)


def convert_adapter(adapter_dir: str | Path, base_gguf: str | Path, out: str | Path | None = None,
                    dtype: str = "f32") -> ConvertedAdapter:
    """Write the llama.cpp LoRA GGUF of the PEFT adapter in `adapter_dir` for the model in `base_gguf`.

    `dtype` is "f32" (exact) or "f16" (half the size). Raises
    AdapterConversionError for anything this converter does not support.
    """
    if dtype not in ("f32", "f16"):
        raise AdapterConversionError(f"dtype must be 'f32' or 'f16', got {dtype!r}")
    adapter_dir = Path(adapter_dir)
    target = Path(out) if out is not None else adapter_dir / DEFAULT_NAME
    config = _read_config(adapter_dir)
    try:
        base = read_header(base_gguf)
    except GGUFError as e:
        raise AdapterConversionError(f"base model: {e}") from None
    arch = base.architecture
    if arch not in SUPPORTED_ARCHS:
        raise AdapterConversionError(f"LoRA conversion is not supported for architecture {arch!r} "
                                     f"(supported: {', '.join(sorted(SUPPORTED_ARCHS))})")
    _check_base_config(adapter_dir, config, base)
    weights = _load_weights(adapter_dir / ADAPTER_WEIGHTS)
    pairs = _pair(weights, base, config)
    alpha = float(config["lora_alpha"])
    _write(target, arch, alpha, pairs, np.float32 if dtype == "f32" else np.float16, adapter_dir.name)
    ranks = [a.shape[0] for a, _ in pairs.values()]
    kinds = tuple(sorted({name.split(".")[2] for name in pairs}))
    log.info("wrote %s: %d LoRA pairs (%s), rank %d, alpha %g", target, len(pairs), ", ".join(kinds), max(ranks), alpha)
    return ConvertedAdapter(target, arch, max(ranks), alpha, len(pairs), kinds)


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    """Read adapter_config.json and refuse the PEFT features llama.cpp's LoRA cannot express."""
    try:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    except FileNotFoundError:
        raise AdapterConversionError(f"{adapter_dir} is not a PEFT adapter directory (no {ADAPTER_CONFIG})") from None
    except (OSError, ValueError) as e:
        raise AdapterConversionError(f"cannot read {adapter_dir / ADAPTER_CONFIG}: {e}") from None
    if config.get("peft_type") != "LORA":
        raise AdapterConversionError(f"only LoRA adapters convert; this one is {config.get('peft_type')!r}")
    refusals = {
        "use_dora": "DoRA adapters (use_dora) are not supported by llama.cpp",
        "modules_to_save": "adapters with modules_to_save (fully trained extra modules) are not supported",
        "alpha_pattern": "per-module lora_alpha (alpha_pattern) is not supported",
        "fan_in_fan_out": "fan_in_fan_out (Conv1D-style transposed weights) is not supported",
        "lora_bias": "adapters that train a LoRA bias (lora_bias) are not supported",
        "trainable_token_indices": "adapters that train token embeddings (trainable_token_indices) are not supported",
        "layer_replication": "layer_replication is not supported",
        "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens) is not supported",
        "target_parameters": "LoRA on raw parameters (target_parameters) is not supported",
        "use_qalora": "QA-LoRA is not supported",
    }
    for key, message in refusals.items():
        if config.get(key):
            raise AdapterConversionError(message)
    if config.get("bias", "none") != "none":
        raise AdapterConversionError(f"adapters that train biases (bias={config['bias']!r}) are not supported")
    if not isinstance(config.get("lora_alpha"), (int, float)) or config["lora_alpha"] <= 0:
        raise AdapterConversionError(f"lora_alpha must be a positive number, got {config.get('lora_alpha')!r}")
    return config


def _check_base_config(adapter_dir: Path, config: Mapping[str, Any], base: GGUFHeader) -> None:
    """When the adapter names its base checkpoint, check that it has the base file's layer count."""
    name = config.get("base_model_name_or_path") or ""
    hf_config = Path(name) / "config.json" if name else None
    if hf_config is None or not hf_config.is_file():
        return
    try:
        layers = json.loads(hf_config.read_text()).get("num_hidden_layers")
    except (OSError, ValueError):
        return
    blocks = base.arch_value("block_count")
    if layers is not None and blocks is not None and int(layers) != int(blocks):
        raise AdapterConversionError(f"adapter {adapter_dir.name} was trained on a {layers}-layer model; "
                                     f"the GGUF base has {blocks} layers")


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    """Load the adapter's tensors as float32 numpy arrays (through torch when present: it reads bf16 too)."""
    if not path.is_file():
        raise AdapterConversionError(f"{path.parent} has no {path.name} (only safetensors adapters convert)")
    try:
        from safetensors.torch import load_file

        return {k: v.float().numpy() for k, v in load_file(str(path)).items()}
    except ImportError:
        from safetensors.numpy import load_file as load_np

        return {k: v.astype(np.float32) for k, v in load_np(str(path)).items()}


def _pair(weights: Mapping[str, np.ndarray], base: GGUFHeader,
          config: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map PEFT's lora_A/lora_B tensors to GGUF names; check them against the base file; fold the scaling into B."""
    import gguf

    arch_id = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[base.architecture]
    blocks = int(base.arch_value("block_count") or 0)
    names = gguf.get_tensor_name_map(arch_id, blocks)
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in weights.items():
        m = _KEY.match(key)
        if m is None:
            raise AdapterConversionError(f"adapter tensor {key!r} is not a LoRA A/B weight (unsupported adapter kind)")
        gguf_name = names.get_name(m["module"] + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise AdapterConversionError(f"adapter module {m['module']!r} has no GGUF name for {base.architecture}")
        kind = gguf_name.split(".")[-2]
        if gguf_name.startswith(("token_embd", "output")) or kind not in _LINEAR_KINDS:
            raise AdapterConversionError(f"LoRA on {m['module']} ({gguf_name}) is not supported: "
                                         "only attention and MLP linear layers")
        found.setdefault(gguf_name, {})[m["which"]] = tensor
    if not found:
        raise AdapterConversionError("the adapter has no LoRA weights")
    rslora = bool(config.get("use_rslora"))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, ab in sorted(found.items()):
        if set(ab) != {"A", "B"}:
            raise AdapterConversionError(f"LoRA weight for {name} lacks its lora_{'B' if 'A' in ab else 'A'} half")
        a, b = ab["A"], ab["B"]  # (r, in), (out, r)
        info = base.tensors.get(name)
        if info is None:
            raise AdapterConversionError(f"the base model has no tensor {name} (adapter for another model?)")
        n_in, n_out = info.shape[0], info.shape[1]  # ggml order: ne0 = in_features
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1] or a.shape[1] != n_in or b.shape[0] != n_out:
            raise AdapterConversionError(f"LoRA shapes A{a.shape} B{b.shape} do not fit {name} "
                                         f"({n_out}x{n_in}); adapter for another model?")
        if rslora:  # PEFT: alpha / sqrt(r); llama.cpp: alpha / r
            b = b * math.sqrt(a.shape[0])
        pairs[name] = (a, b)
    return pairs


def _write(target: Path, arch: str, alpha: float, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
           dtype: type[np.floating[Any]], name: str) -> None:
    """Write the adapter file through a temporary file beside `target`, then rename it into place."""
    import gguf

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_name(name)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for base_name, (a, b) in pairs.items():
            writer.add_tensor(base_name + ".lora_a", np.ascontiguousarray(a, dtype=dtype))
            writer.add_tensor(base_name + ".lora_b", np.ascontiguousarray(b, dtype=dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    """Convert one adapter directory; print the GGUF file's path."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        sys.stderr.write("usage: python -m finetune.gguf_adapter ADAPTER_DIR BASE.gguf [OUT.gguf]\n")
        return 2
    try:
        done = convert_adapter(args[0], args[1], args[2] if len(args) == 3 else None)
    except AdapterConversionError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    sys.stdout.write(f"{done.path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
