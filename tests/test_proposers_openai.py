"""The openai proposer against a real OpenAI-protocol server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from conftest import evolve, evolve_json, interrupt, start_evolve, wait_for
from evolve.errors import ConfigError
from evolve.prompt import build_prompt
from evolve.proposers.base import ProposerError, ProposerInterrupted
from evolve.proposers.lm import OpenAIConfig, SamplingConfig
from evolve.proposers.arms import LMProposer
from evolve.proposers.openai_api import openai_proposer
from openai_server import fake_openai

SEED = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Best fit."""\n    return -(bins - item)\n'
PROMPTS = [build_prompt(i, (1,), (SEED,), (-1.0,), "priority", "import numpy as np\n") for i in range(5)]


def proposer(url: str, fmt: str = "completion", **config: object) -> LMProposer:
    settings = {"api_base": url, "model": "tiny-coder", "backoff_s": 0.0, **config}
    return openai_proposer(OpenAIConfig(**settings), SamplingConfig(format=fmt), seed=0, api_key="sk-test")  # type: ignore[arg-type]


def texts(proposals: list) -> list[list[str]]:
    return [p.texts for p in proposals]


def test_completions_send_the_funsearch_prompt_and_return_whole_functions() -> None:
    with fake_openai() as server:
        out = texts(proposer(server.url, concurrency=2).propose(PROMPTS, 3))
    assert [len(o) for o in out] == [3] * 5
    assert all(c.startswith('def priority_v1(item: float, bins: np.ndarray) -> np.ndarray:\n    """Improved') for o in out for c in o)
    first = server.requests[0]
    assert first["path"] == "/v1/completions" and first["model"] == "tiny-coder" and first["n"] == 3
    assert (first["temperature"], first["top_p"]) == (1.0, 0.95)
    assert first["prompt"].endswith('    """Improved version of `priority_v0`."""\n') and "\ndef " in first["stop"]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert 1 <= server.max_in_flight <= 2  # bounded concurrency


def test_chat_sends_messages_and_parses_fenced_answers() -> None:
    with fake_openai() as server:
        p = proposer(server.url, "chat")
        out = texts(p.propose(PROMPTS[:2], 2))
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert [m["role"] for m in server.requests[0]["messages"]] == ["system", "user"]
    assert all("```python\ndef priority_v1(item, bins):" in c for o in out for c in o)
    assert p.generated_tokens == 2 * 2 * 10


def test_a_server_that_ignores_n_is_asked_again() -> None:
    with fake_openai(ignore_n=True) as server:
        out = texts(proposer(server.url).propose(PROMPTS[:1], 4))
    assert len(out[0]) == 4 and len(server.requests) == 4
    assert [r["n"] for r in server.requests] == [4, 3, 2, 1]


def test_429_and_500_are_retried_then_succeed() -> None:
    busy = {"error": {"message": "rate limited", "type": "rate_limit"}}
    with fake_openai(fail_next=[(429, busy), (500, {"error": "overloaded"})]) as server:
        out = texts(proposer(server.url).propose(PROMPTS[:1], 2))
    assert len(out[0]) == 2 and len(server.requests) == 3


def test_retries_run_out_with_a_clear_error() -> None:
    with fake_openai(fail_next=[(503, {"error": {"message": "warming up"}})] * 3) as server:
        with pytest.raises(ProposerError, match=r"HTTP 503 after 3 attempts: warming up"):
            proposer(server.url, retries=2).propose(PROMPTS[:1], 1)


def test_400_is_not_retried_and_quotes_the_server() -> None:
    bad = {"error": {"message": "This model's maximum context length is 2048 tokens", "type": "invalid_request_error"}}
    with fake_openai(fail_next=[(400, bad)]) as server:
        with pytest.raises(ProposerError, match="HTTP 400: This model's maximum context length is 2048 tokens"):
            proposer(server.url).propose(PROMPTS[:1], 1)
    assert len(server.requests) == 1


def test_unreachable_server_is_a_proposer_error() -> None:
    with fake_openai() as server:
        url = server.url
    with pytest.raises(ProposerError, match="ConnectError"):
        proposer(url, retries=1).propose(PROMPTS[:1], 1)


def test_model_comes_from_the_environment_or_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOLVE_MODEL", raising=False)
    with pytest.raises(ConfigError, match="needs a model name"):
        openai_proposer(OpenAIConfig(), SamplingConfig(), seed=0)
    monkeypatch.setenv("EVOLVE_MODEL", "from-env")
    monkeypatch.setenv("EVOLVE_API_BASE", "http://127.0.0.1:9/v1/")
    p = openai_proposer(OpenAIConfig(), SamplingConfig(), seed=0)
    assert (p.model, p.backend.api_base) == ("from-env", "http://127.0.0.1:9/v1")


def test_evolve_run_against_the_server(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "o.db"
    with fake_openai() as server:
        proc = evolve("run", "bin_packing_or", "--proposer", "openai", "--api-base", server.url, "--model", "tiny-coder",
                      "--api-key", "sk-secret", "--db", str(db), "--budget", "40", "--workers", "2", "--config", str(small_config))
        assert proc.returncode == 0, proc.stderr
        status = evolve_json("status", str(db))
        assert status["samples"] == 40 and status["valid"] >= 5
        assert status["rejected"].get("empty-body", 0) >= 1  # the bodies cut off in their first line
        assert status["failures"].get("invalid-output", 0) >= 1
        assert status["tokens"] == 10 * sum(r["n"] for r in server.requests)
        pipeline = status["pipeline"]
        assert pipeline["duplicate_share"] == pytest.approx(status["duplicates"] / 40)
        assert pipeline["samples_per_s"] > 0 and pipeline["tokens_per_s"] > 0
        assert min(pipeline["proposer_waited_share"], pipeline["sandbox_waited_share"]) >= 0
        # The loop filled the prompt: the spec's preface, then the versions, then the header to continue.
        prompt = server.requests[0]["prompt"]
        assert prompt.startswith('"""Online bin packing') and "def evaluate(instances: dict) -> float:" in prompt
        assert "GP_PRIMITIVES" not in prompt and prompt.endswith('"""Improved version of `priority_v0`."""\n')
        with sqlite3.connect(db) as conn:
            rows = set(conn.execute("SELECT proposer, model FROM programs WHERE proposer != 'seed'"))
            stored = json.dumps([list(r) for r in conn.execute("SELECT * FROM run")])
        assert rows == {("openai", "tiny-coder")}
        assert "sk-secret" not in stored and server.url in stored  # the key is never stored, the URL is
        assert all(h["Authorization"] == "Bearer sk-secret" for h in server.headers)
        # Resume reads the key again from the environment.
        resumed = evolve("resume", str(db), "--budget", "48", env={"EVOLVE_API_KEY": "sk-env"})
        assert resumed.returncode == 0, resumed.stderr
        assert server.headers[-1]["Authorization"] == "Bearer sk-env"
    # The server moved: resume --api-base/--model sends the rest there, and later resumes keep it.
    with fake_openai() as moved:
        resumed = evolve("resume", str(db), "--budget", "56", "--api-base", moved.url, "--model", "coder-2",
                         env={"EVOLVE_API_KEY": "sk-env"})
        assert resumed.returncode == 0, resumed.stderr
        assert moved.requests and {r["model"] for r in moved.requests} == {"coder-2"}
        again = evolve("resume", str(db), "--budget", "64", env={"EVOLVE_API_KEY": "sk-env"})
        assert again.returncode == 0, again.stderr
        assert {r["model"] for r in moved.requests} == {"coder-2"} and len(moved.requests) > 4


def test_evolve_run_with_a_refusing_server_is_one_line_exit_2(tmp_path: Path) -> None:
    with fake_openai(fail_next=[(401, {"error": {"message": "Incorrect API key provided"}})]) as server:
        proc = evolve("run", "bin_packing_or", "--proposer", "openai", "--api-base", server.url, "--model", "m",
                      "--db", str(tmp_path / "x.db"), "--budget", "8", "--workers", "1")
    assert proc.returncode == 2
    assert "HTTP 401: Incorrect API key provided" in proc.stderr and "Traceback" not in proc.stderr


def test_a_long_retry_after_is_capped() -> None:
    import httpx

    from evolve.proposers.openai_api import MAX_RETRY_AFTER_S, _retry_after
    from evolve.proposers.streaming import Reply

    def reply(status: int, **headers: str) -> Reply:
        return Reply(status, {}, "", httpx.Headers(headers))

    assert _retry_after(reply(429, **{"retry-after": "3"}), 1.0) == 3.0
    assert _retry_after(reply(429, **{"retry-after": "86400"}), 1.0) == MAX_RETRY_AFTER_S  # not a day
    assert _retry_after(reply(503, **{"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}), 1.5) == 1.5
    assert _retry_after(reply(429), 2.0) == 2.0


def test_closing_a_mix_closes_its_http_client_and_event_loop() -> None:
    from evolve.proposers.mixed import MixedProposer

    with fake_openai() as server:
        api = proposer(server.url)
        api.propose(PROMPTS[:1], 1)
        client, runner = api.backend._client, api.backend._runner
        assert client is not None and runner is not None
        MixedProposer([(api, 1.0)], seed=0).close()
        assert client.is_closed and api.backend._client is None and not runner._thread.is_alive()


def test_a_server_that_refuses_n_gets_single_requests_from_then_on() -> None:
    with fake_openai(max_n=1) as server:
        p = proposer(server.url)
        first = texts(p.propose(PROMPTS[:2], 3))
        notes = p.notices()
        second = texts(p.propose(PROMPTS[:1], 3))
    assert [len(t) for t in first + second] == [3, 3, 3] and all(all(t) for t in first + second)
    refused = [r for r in server.requests if r["n"] > 1]
    assert len(refused) == 2  # once per prompt of the first batch, never again
    assert all(r["n"] == 1 for r in server.requests[len(refused):] if r not in refused)
    assert [r["n"] for r in server.requests[-3:]] == [1, 1, 1]
    assert len({r["seed"] for r in server.requests if r["n"] == 1}) == 9  # each single request its own seed
    assert notes and "refuses n > 1" in notes[0] and p.notices() == []


def test_a_prompt_beyond_the_context_names_its_tokens_and_the_limit() -> None:
    too_long = {"error": {"code": 400, "message": "request (3002 tokens) exceeds the available context size (1024 tokens)",
                          "type": "exceed_context_size_error", "n_prompt_tokens": 3002, "n_ctx": 1024}}
    with fake_openai(fail_next=[(400, too_long)]) as server:
        with pytest.raises(ProposerError, match="the prompt has 3002 tokens and the server's context per request is 1024"):
            proposer(server.url).propose(PROMPTS[:1], 1)


@pytest.mark.parametrize("mode", ["hang", "stall_mid", "close_mid"])
def test_a_stalled_server_is_noticed_well_before_the_timeout_and_retried(mode: str) -> None:
    with fake_openai(**{mode: True}, misbehave=1) as server:
        p = proposer(server.url, stall_s=1.0, timeout_s=300.0)
        started = time.monotonic()
        out = texts(p.propose(PROMPTS[:1], 2))
        took = time.monotonic() - started
        notes = p.notices()
        p.close()
    assert len(out[0]) == 2 and all(out[0])
    assert took < 15, took  # a stall costs about stall_s (+ the health probe), not timeout_s
    assert len(notes) == 1 and "retrying" in notes[0], notes
    assert len([r for r in server.requests if r["path"].endswith("/completions")]) == 2


def test_interrupt_ends_a_hung_batch_at_once_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    with fake_openai(hang=True) as server:
        p = proposer(server.url, stall_s=60.0, timeout_s=300.0)
        timer = threading.Timer(1.0, p.interrupt)
        timer.start()
        started = time.monotonic()
        with pytest.raises(ProposerInterrupted):
            p.propose(PROMPTS[:3], 2)
        assert time.monotonic() - started < 5
        p.close()
        timer.join()
        # the event loop's thread is gone (threads of earlier tests' proposers do not count)
        assert not [t for t in set(threading.enumerate()) - before if t.name == "http-stream"]
        assert len(server.requests) == 3  # the requests were in flight when it was interrupted


def _start_run(db: Path, url: str, config: Path) -> subprocess.Popen[str]:
    return start_evolve("run", "bin_packing_or", "--proposer", "openai", "--api-base", url, "--model", "m", "--db", str(db),
                        "--budget", "400", "--workers", "1", "--config", str(config))


def test_ctrl_c_against_a_server_that_never_answers_exits_within_seconds(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "hung.db"
    with fake_openai(hang=True) as server:
        proc = _start_run(db, server.url, small_config)
        try:
            # seeded, and its first batch is in flight
            assert wait_for(lambda: bool(server.requests), 60, poll_s=0.1), proc.stderr and proc.stderr.read()
            time.sleep(0.5)
            out, err, took = interrupt(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert took < 10, took  # openai.timeout_s is 300 s
    assert "run stopped" in out and "Traceback" not in err
    status = evolve_json("status", str(db))
    assert status["state"] == "stopped"


def test_a_stalled_server_is_retried_and_shown_in_status(tmp_path: Path, small_config: Path) -> None:
    config = tmp_path / "stall.toml"
    config.write_text(small_config.read_text() + "\n[openai]\nstall_s = 1.0\nbackoff_s = 0.1\n")
    db = tmp_path / "stalled.db"
    with fake_openai(stall_mid=True, misbehave=1) as server:
        proc = evolve("run", "bin_packing_or", "--proposer", "openai", "--api-base", server.url, "--model", "m",
                      "--db", str(db), "--budget", "16", "--workers", "1", "--config", str(config), timeout=120)
    assert proc.returncode == 0, proc.stderr
    status = evolve_json("status", str(db))
    assert status["samples"] == 16 and status["notices"] == 1
    assert "stopped: no byte for 1 s" in status["last_notices"][0]
    shown = evolve("status", str(db))
    assert "proposer notices: 1" in shown.stdout
