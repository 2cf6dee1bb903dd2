"""Shared helpers: run the real `evolve` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def evolve(
    *args: str, cwd: Path | None = None, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m evolve.cli ARGS` (with extra environment variables) and return the finished process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "evolve.cli", *args], cwd=cwd or ROOT, env=full_env, text=True,
        capture_output=True, timeout=timeout,
    )


def evolve_json(*args: str) -> dict[str, Any]:
    proc = evolve(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """A TOML config for fast runs: few islands, small batches, short timeouts."""
    path = tmp_path / "small.toml"
    path.write_text(
        "[islands]\nnum_islands = 4\nreset_period = 120\n"
        "[loop]\nprompts_per_batch = 4\nsamples_per_prompt = 2\n"
        "[sandbox]\ntimeout_s = 10.0\n"
    )
    return path
