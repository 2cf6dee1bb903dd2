"""The llama.cpp server evoloop starts itself: real model, real server, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ROOT
from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig, LlamaServerError, ctx_per_slot_for
from llm_fixtures import gemma_gguf, model_cache, need_server  # noqa: F401  (session fixtures)
from sandbox.procs import alive

pytestmark = pytest.mark.usefixtures("need_server")


def config(model: Path, **kw: object) -> LlamaServerConfig:
    return LlamaServerConfig(model=str(model), threads=2, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(gemma_gguf: Path) -> Iterator[LlamaServer]:  # noqa: F811
    with LlamaServer(config(gemma_gguf, slots=2, ctx_per_slot=512, alias="gemma")) as s:
        yield s


def gone(pid: int, port: int, within_s: float = 10.0) -> bool:
    """Wait until `pid` is dead (or a zombie) and nothing listens on `port`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not alive(pid) and not listening(port):
            return True
        time.sleep(0.1)
    return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_health_slots_and_context_as_configured(server: LlamaServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    assert (server.slots, server.ctx_per_slot) == (2, 512)
    props = httpx.get(server.base_url + "/props").json()
    assert props["total_slots"] == 2 and props["model_alias"] == "gemma"
    assert not server.has_chat_template  # the base model has none, though /props shows a ChatML fallback
    assert props["chat_template"]


def test_a_real_completion(server: LlamaServer) -> None:
    body = {"model": "gemma", "prompt": "def add(a, b):\n    return", "max_tokens": 8, "temperature": 0}
    out = httpx.post(server.api_base + "/completions", json=body, timeout=120).json()
    assert "a + b" in out["choices"][0]["text"]
    assert out["usage"]["completion_tokens"] >= 3 and out["usage"]["prompt_tokens"] > 5


def test_ctrl_c_in_the_terminal_does_not_reach_the_server(server: LlamaServer) -> None:
    assert server.pid is not None
    assert os.getpgid(server.pid) != os.getpgid(0)  # its own process group: the terminal's SIGINT goes to ours
    os.kill(server.pid, signal.SIGINT)  # and one sent to it directly is ignored
    time.sleep(0.5)
    assert httpx.get(server.base_url + "/health").status_code == 200


def test_stop_is_prompt_idempotent_and_frees_the_port(gemma_gguf: Path) -> None:  # noqa: F811
    s = LlamaServer(config(gemma_gguf))
    s.start()
    pid, port = s.pid, s.port
    assert pid is not None and listening(port)
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 3
    s.stop()
    assert not s.running and gone(pid, port, within_s=1)
    with pytest.raises(LlamaServerError, match="not running"):
        s.base_url  # noqa: B018


def test_a_killed_parent_leaves_no_server(gemma_gguf: Path) -> None:  # noqa: F811
    script = (
        "import json, sys, time\n"
        "from evolve.proposers.llamacpp_server import LlamaServer, LlamaServerConfig\n"
        f"s = LlamaServer(LlamaServerConfig(model={str(gemma_gguf)!r}, threads=1))\n"
        "s.start()\n"
        "print(json.dumps({'pid': s.pid, 'port': s.port}), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        child = json.loads(line)
        assert alive(child["pid"]) and listening(child["port"])
    finally:
        parent.kill()
        parent.wait()
    assert gone(child["pid"], child["port"]), "the server outlived its parent's SIGKILL"


def test_a_server_started_from_a_short_lived_thread_survives_it(gemma_gguf: Path) -> None:  # noqa: F811
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; the module forks from its own long-lived thread.
    s = LlamaServer(config(gemma_gguf))
    worker = threading.Thread(target=s.start)
    worker.start()
    worker.join()
    try:
        time.sleep(1.0)
        assert s.running and httpx.get(s.base_url + "/health").status_code == 200
    finally:
        s.stop()


def test_a_file_that_is_not_gguf_gives_one_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>not a model</html>")
    with pytest.raises(LlamaServerError, match="not a GGUF file") as err:
        LlamaServer(config(fake)).start()
    assert "\n" not in str(err.value)


def test_a_model_that_fails_to_load_quotes_the_servers_error(gemma_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    truncated = tmp_path / "truncated.gguf"
    with open(gemma_gguf, "rb") as f:
        truncated.write_bytes(f.read(16_000_000))  # the whole header, a fraction of the weights
    s = LlamaServer(config(truncated))
    with pytest.raises(LlamaServerError, match="while loading .*not within the file bounds") as err:
        s.start()
    assert "\n" not in str(err.value) and not s.running


def test_restart_changes_the_configuration(gemma_gguf: Path) -> None:  # noqa: F811
    s = LlamaServer(config(gemma_gguf, slots=1, ctx_per_slot=256))
    s.start()
    old_pid = s.pid
    try:
        seconds = s.restart(config(gemma_gguf, slots=3, ctx_per_slot=256))
        assert (s.slots, s.ctx_per_slot) == (3, 256) and s.pid != old_pid and seconds > 0
        assert old_pid is not None and not alive(old_pid)
    finally:
        s.stop()


@pytest.mark.parametrize(("prompt", "answer", "expected"), [(100, 412, 512), (649, 512, 1280), (1, 1, 256)])
def test_ctx_per_slot_holds_the_prompt_and_the_answer(prompt: int, answer: int, expected: int) -> None:
    assert ctx_per_slot_for(prompt, answer) == expected


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="slots"):
        LlamaServerConfig(model="m.gguf", slots=0)
    assert LlamaServerConfig(model="m.gguf", slots=4, ctx_per_slot=1024).n_ctx == 4096
