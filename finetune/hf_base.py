"""Make, once, the Hugging Face checkpoint that LoRA rounds train on, from the GGUF file the llamacpp proposer serves.

    python -m finetune.hf_base MODEL.gguf     # prints the directory (about 3 minutes the first time, then at once)

transformers reads a GGUF file (`from_pretrained(dir, gguf_file=name)`,
with the `gguf` and `accelerate` packages) and dequantizes it to fp32, so
the checkpoint holds exactly the weights llama.cpp computes with, up to
rounding: an adapter trained on it fits the served model. Saved as a plain
safetensors checkpoint (about 1.1 GB for Gemma 3 270M) it loads in
seconds instead of minutes.

Where it goes: beside a GGUF file in the model cache (``<name>.hf/``), or,
for a GGUF file elsewhere, under ``<cache>/hf/<stem>-<key>/``. It is
written into a temporary directory and renamed into place, under a lock, so
concurrent callers build it once and a crash leaves nothing a later call
would trust. ``evoloop-source.json`` inside records the GGUF file's size
and mtime; a changed file makes a new checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from evolve import models

log = logging.getLogger(__name__)

SOURCE_FILE = "evoloop-source.json"


class HFBaseError(Exception):
    """A GGUF file that cannot be turned into a transformers checkpoint; one line for the CLI."""


def hf_dir_for(gguf: Path, cache: Path | None = None) -> Path:
    """Return where the checkpoint made from `gguf` lives (whether or not it exists yet)."""
    gguf = Path(gguf).resolve()
    root = (cache or models.cache_dir()).resolve()
    beside = gguf.with_name(gguf.stem + ".hf")
    if root in gguf.parents or beside.is_dir():  # in a model cache (the one given, or another, e.g. the tests')
        return beside
    key = hashlib.sha256(str(gguf).encode()).hexdigest()[:12]
    return root / "hf" / f"{gguf.stem}-{key}"


def hf_base_dir(gguf: str | Path, cache: Path | None = None) -> Path:
    """Return the transformers checkpoint (model, config, tokenizer) made from `gguf`, making it on the first call.

    Raises HFBaseError when transformers, gguf or accelerate is missing or
    transformers cannot read this GGUF file's architecture.
    """
    gguf = Path(gguf).resolve()
    if not gguf.is_file():
        raise HFBaseError(f"GGUF file {gguf} does not exist")
    target = hf_dir_for(gguf, cache)
    if _current(target, gguf):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        if _current(target, gguf):  # another process made it while we waited
            return target
        _build(gguf, target)
    return target


def _source_record(gguf: Path) -> dict[str, object]:
    st = gguf.stat()
    return {"gguf": str(gguf), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _current(target: Path, gguf: Path) -> bool:
    """Tell whether `target` is a finished checkpoint made from this very GGUF file."""
    try:
        return json.loads((target / SOURCE_FILE).read_text()) == _source_record(gguf)
    except (OSError, ValueError):
        return False


def _build(gguf: Path, target: Path) -> None:
    """Dequantize `gguf` with transformers into a temporary directory beside `target`, then rename it into place."""
    try:
        import accelerate  # noqa: F401  (transformers' GGUF loading needs it)
        import gguf as _gguf  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise HFBaseError(f"making a checkpoint from GGUF needs transformers, gguf and accelerate ({e.name} is "
                          "missing): pip install -e '.[lm,llamacpp]'") from None
    started = time.monotonic()
    log.info("making a transformers checkpoint from %s (minutes, once)", gguf)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HFBaseError(f"transformers cannot load {gguf.name}: {first}") from None
        # The GGUF quantizer object would be saved with the config and make every later load dequantize again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(_source_record(gguf)))
        _fsync_tree(tmp)
        if target.exists():  # a stale checkpoint from an older GGUF file at the same path
            shutil.rmtree(target)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("made %s in %.0f s", target, time.monotonic() - started)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of `folder` and the folder itself, so the rename publishes complete files.

    Also opens the modes up (mkdtemp makes the folder 0700) so that a shared
    cache serves every user.
    """
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    """Make (or find) the checkpoint for one GGUF file or known model name and print its directory."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m finetune.hf_base MODEL.gguf|KNOWN-NAME\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        directory = hf_base_dir(models.resolve(args[0]))
    except (HFBaseError, models.ModelError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    sys.stdout.write(f"{directory}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
