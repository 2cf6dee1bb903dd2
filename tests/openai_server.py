"""A small real HTTP server on 127.0.0.1 that speaks the OpenAI protocol, for tests.

It answers `/v1/completions` and `/v1/chat/completions` with bodies for the
bin-packing `priority` function (some valid, some garbage), streamed as
server-sent events when asked (`"stream": true`), and `GET /health`. It can
fail the next requests with given status codes (429, 500, 400, ...), refuse
n above `max_n` as llama.cpp does, and misbehave as stalled servers do:
accept and never answer (`hang`), answer half and go silent (`stall_mid`),
or close the connection mid-answer (`close_mid`) for its next `misbehave`
requests. It records every request it got and stops when the test's `with`
block ends (hung handlers included).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODIES = [
    "    return -(bins - item) * {c}\n",
    "    gap = bins - item\n    return -gap + {c} * (gap == 0)\n",
    "    return -(bins - item) ** 2 / {c}\n",
    "    return (\n",  # cut off: trimmed to an empty body, rejected
    "    return 'not an array'\n",  # runs, but an invalid output
]


@dataclass
class FakeOpenAI:
    """What the server does next and what it has seen."""

    fail_next: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (status, JSON body) to send first
    ignore_n: bool = False  # answer one choice per request, as llama.cpp does
    delay_s: float = 0.0
    max_n: int | None = None  # refuse a larger n with llama.cpp's 400
    hang: bool = False  # accept, read the request, never answer (health checks included)
    stall_mid: bool = False  # stream the first event, then go silent
    close_mid: bool = False  # stream the first event, then close the connection
    hung: int = 0  # requests held by `hang` right now
    misbehave: int = 10**9  # how many requests misbehave before it answers normally
    released: threading.Event = field(default_factory=threading.Event)  # set at shutdown: hung handlers return
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        if path.endswith("/load_lora_adapter"):  # vLLM's runtime adapter loading (it answers in plain text)
            return 200, f"Success: LoRA adapter '{body.get('lora_name')}' added successfully."  # type: ignore[return-value]
        if self.max_n is not None and int(body.get("n", 1)) > self.max_n:
            return 400, {"error": {"code": 400, "type": "invalid_request_error",
                                   "message": f"Field 'n': Value must be between 1 <= value <= {self.max_n}, "
                                              f"but got {body.get('n')}"}}
        n = 1 if self.ignore_n else int(body.get("n", 1))
        texts = []
        for _ in range(n):
            with self.lock:
                self.counter += 1
                c = self.counter
            texts.append(BODIES[c % len(BODIES)].format(c=1 + c / 100))
        if path.endswith("/chat/completions"):
            wanted = re.search(r"Write `(\w+)`", body["messages"][-1]["content"])
            name = wanted.group(1) if wanted else "priority"
            choices = [
                {"index": i, "message": {"role": "assistant", "content": f"Here you go:\n```python\ndef {name}(item, bins):\n{t}```\n"},
                 "finish_reason": "stop"}
                for i, t in enumerate(texts)
            ]
            kind = "chat.completion"
        elif path.endswith("/completions"):
            choices = [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]
            kind = "text_completion"
        else:
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        usage = {"prompt_tokens": 100 * n, "completion_tokens": 10 * n, "total_tokens": 110 * n}
        return 200, {"id": f"cmpl-{self.counter}", "object": kind, "model": body.get("model"), "choices": choices, "usage": usage}


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if state.hang and (self._misbehaves(count=False) or state.hung):  # a stuck server is stuck for all
                state.released.wait()
                return
            self._send(200 if self.path == "/health" else 404, {"status": "ok"} if self.path == "/health" else {})

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                state.requests.append({"path": self.path, **body})
                state.headers.append(dict(self.headers))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.hang and self._misbehaves():
                    with state.lock:
                        state.hung += 1
                    state.released.wait()
                    self.close_connection = True
                    return
                time.sleep(state.delay_s)
                status, payload = state.answer(self.path, body)
            finally:
                with state.lock:
                    state.in_flight -= 1
            if status == 200 and body.get("stream") and isinstance(payload, dict):
                self._stream(payload)
            else:
                self._send(status, payload)

        def _misbehaves(self, count: bool = True) -> bool:
            with state.lock:
                if state.misbehave <= 0:
                    return False
                if count:
                    state.misbehave -= 1
                return True

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, payload: dict[str, Any]) -> None:
            """Send the answer as server-sent events: each choice's text in two pieces, then usage, then [DONE]."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chat = payload["object"] == "chat.completion"
            events = []
            for choice in payload["choices"]:
                text = choice["message"]["content"] if chat else choice["text"]
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    part = {"delta": {"content": piece}} if chat else {"text": piece}
                    events.append({"choices": [{"index": choice["index"], **part, "finish_reason": None}]})
            events.append({"choices": [], "usage": payload["usage"]})
            misbehave = (state.stall_mid or state.close_mid) and self._misbehaves()
            for k, event in enumerate(events):
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if misbehave and k == 0:
                    if state.stall_mid:
                        state.released.wait()
                    return  # close_mid: the connection closes here, without [DONE]
            self.wfile.write(b"data: [DONE]\n\n")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            pass

    return Handler


@contextmanager
def fake_openai(**options: Any) -> Iterator[FakeOpenAI]:
    """Serve the fake API on a free port of 127.0.0.1 for the duration of the block."""
    state = FakeOpenAI(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
