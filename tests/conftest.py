"""Shared helpers: run the real `evolve` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **(env or {})}


def evolve(
    *args: str, cwd: Path | None = None, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m evolve.cli ARGS` (with extra environment variables) and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "evolve.cli", *args], cwd=cwd or ROOT, env=_cli_env(env), text=True,
        capture_output=True, timeout=timeout,
    )


def start_evolve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m evolve.cli ARGS` in the background, its output piped (for tests that signal or kill it)."""
    return subprocess.Popen([sys.executable, "-m", "evolve.cli", *args], cwd=ROOT, env=_cli_env(env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> bool:
    """Poll `predicate` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def interrupt(proc: subprocess.Popen[str], timeout_s: float = 30) -> tuple[str, str, float]:
    """Send one SIGINT (Ctrl-C) and return the process's stdout, stderr and the seconds it took to exit."""
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = proc.communicate(timeout=timeout_s)
    return out, err, time.monotonic() - started


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
