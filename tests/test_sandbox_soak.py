"""A short soak: benign and hostile programs mixed through a live run (bench/soak_sandbox.py runs 10,000)."""

from __future__ import annotations

import importlib.util
import subprocess
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "soak_sandbox.py"


def _soak_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Load bench/soak_sandbox.py (bench/ is scripts, not a package; they import bench/common.py)."""
    monkeypatch.syspath_prepend(str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("soak_sandbox", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_mixed_run_records_every_failure_kind_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    soak = _soak_module(monkeypatch)
    bystander = subprocess.Popen(["sleep", "300"])  # started before the soak, not by its pool: not judged
    try:
        result = soak.soak(600, workers=2, directory=tmp_path)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert result["reason"] == "budget"
    assert result["evaluations"] == 600  # every candidate distinct, so every one evaluated and archived
    assert result["wrong_kind"] == 0, result["wrong_examples"]
    assert set(result["kinds"]) == {"valid", "forbidden", "memory", "error", "invalid-output", "timeout"}
    assert result["leftover_processes"] == []  # no stray process, no zombie (else "pid: command line" of each)
    # The loop never holds what candidates made: over the second half, the Python objects still alive
    # are the islands' (a few hundred bytes per program registered) and nothing else worth counting.
    assert result["traced_evaluations"] >= 250
    # About 80 KiB here, all of it in bounded caches (CPython's type-attribute cache and free lists,
    # SQLite's statement cache); and no container object (a result, a future, a candidate) piles up.
    assert result["python_growth_rest_kib"] < 192, result
    grown = dict(result["objects_grown_rest"])
    # sqlite3 keeps a weak reference per cursor and prunes the dead ones every 200 cursors.
    assert grown.pop("ReferenceType", 0) <= 200, result["objects_grown_rest"]
    assert sum(grown.values()) < 64, result["objects_grown_rest"]
    assert 0 < result["islands_bytes_per_registration"] < 2048, result
    assert soak.memory_is_flat(result), result
