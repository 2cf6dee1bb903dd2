"""Streamed HTTP requests that a stalled server cannot hold hostage: stall detection and cancellation at once.

    runner = EventLoop()                                  # one asyncio loop in a daemon thread
    future = runner.submit(post_streamed(client, url, body, watch))
    runner.cancel_all()                                   # Ctrl-C: every request in flight ends now

Each request streams (server-sent events), so that silence can be told
apart from a long answer. A reader task moves lines into a queue; the
request's own coroutine waits on that queue and decides:

- once bytes have come, no byte for `stall_s` seconds is a stall;
- before the first byte (a long prompt may take a while to process), each
  `stall_s` of silence is followed by a health probe of the server: one
  that answers is only slow, one that does not is stalled;
- past `timeout_s` in all, the request has timed out.

A stall, a timeout and a connection closed mid-stream raise `Stalled`,
which callers retry. Cancelling a request (directly or by `cancel_all`)
closes its connection: the server stops generating for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
HEALTH_TIMEOUT_S = 5.0
_END = object()  # the reader's last item: the stream ended


class Stalled(Exception):
    """A server that stopped answering (or closed the connection mid-answer); worth retrying."""


@dataclass(frozen=True)
class Watch:
    """How long silence may last."""

    stall_s: float  # no byte for this long, once bytes have come (before: a health probe decides)
    timeout_s: float  # the whole request
    health_url: str = ""  # probed after each `stall_s` of silence before the first byte ("" : no probe)


@dataclass(frozen=True)
class Reply:
    """What a server answered: the status and, for 200, the JSON object (a stream's events folded into one)."""

    status: int
    data: dict[str, Any]
    text: str = ""  # the body as text, for an error status
    headers: httpx.Headers | None = None


class EventLoop:
    """One asyncio event loop in a daemon thread, taking coroutines from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="http-stream", daemon=True)
        self._thread.start()
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the loop; the future can be waited on (and cancelled) from any thread."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def cancel_all(self) -> None:
        """Cancel every coroutine still running (their connections close)."""
        with self._lock:
            pending = list(self._futures)
        for future in pending:
            future.cancel()

    def close(self) -> None:
        """Cancel what runs, stop the loop and its thread."""
        if self.loop.is_running():
            drained = asyncio.run_coroutine_threadsafe(_cancel_tasks(), self.loop)
            try:
                drained.result(timeout=5)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)


async def _cancel_tasks() -> None:
    """Cancel every other task of the running loop and wait for them (none is destroyed while pending)."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def post_streamed(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str],
                        watch: Watch) -> Reply:
    """POST `body` with `"stream": true` and return the folded answer, watching for stalls (see the module)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    reader = asyncio.create_task(_read(client, url, body, headers, queue))
    started = time.monotonic()
    got_bytes = False
    lines: list[str] = []
    try:
        while True:
            left = watch.timeout_s - (time.monotonic() - started)
            if left <= 0:
                raise Stalled(f"no complete answer within {watch.timeout_s:g} s")
            try:
                item = await asyncio.wait_for(queue.get(), timeout=min(watch.stall_s, left))
            except TimeoutError:
                if time.monotonic() - started >= watch.timeout_s:
                    raise Stalled(f"no complete answer within {watch.timeout_s:g} s") from None
                if got_bytes:
                    raise Stalled(f"the answer stopped: no byte for {watch.stall_s:g} s") from None
                if not await _healthy(client, watch.health_url):
                    raise Stalled(f"no answer for {watch.stall_s:g} s, and the server's health check "
                                  "does not answer either") from None
                continue  # alive, only slow (a long prompt): keep waiting
            if isinstance(item, BaseException):
                raise item
            if item is _END:
                break
            if isinstance(item, Reply):  # an error status, read whole
                return item
            got_bytes = True
            lines.append(item)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return Reply(200, fold_events(lines))


async def _read(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str],
                queue: asyncio.Queue[Any]) -> None:
    """Send the request and put each line of the answer in `queue`, then _END (or the error, or an error Reply)."""
    try:
        async with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                await queue.put(Reply(response.status_code, {}, text, response.headers))
                return
            if "text/event-stream" not in response.headers.get("content-type", ""):
                data = json.loads(await response.aread())  # a server that ignores "stream": one JSON answer
                await queue.put(json.dumps({"whole": data}))
                await queue.put(_END)
                return
            done = False
            async for line in response.aiter_lines():
                if line.strip() == "data: [DONE]":
                    done = True
                    break
                if line.startswith("data:"):
                    await queue.put(line[5:].strip())
            if not done:
                raise Stalled("the server closed the connection in the middle of its answer")
            await queue.put(_END)
    except asyncio.CancelledError:
        raise
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        await queue.put(Stalled(f"the server closed the connection in the middle of its answer ({exc})"))
    except BaseException as exc:  # connection refused, bad JSON, ...: the caller decides
        await queue.put(exc)


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    """Tell whether the server answers its health check at all (any status counts); True without a URL."""
    if not url:
        return True
    try:
        await asyncio.wait_for(client.get(url), timeout=HEALTH_TIMEOUT_S)
    except (TimeoutError, httpx.HTTPError):
        return False
    return True


def fold_events(lines: list[str]) -> dict[str, Any]:
    """Fold a completion stream's events into one answer: the choices' texts (or messages) in order, and usage."""
    texts: dict[int, list[str]] = {}
    chat = False
    usage: dict[str, Any] = {}
    for line in lines:
        event = json.loads(line)
        if "whole" in event:  # not streamed after all
            return dict(event["whole"])
        for choice in event.get("choices") or ():
            parts = texts.setdefault(int(choice.get("index", 0)), [])
            if "delta" in choice:
                chat = True
                parts.append((choice["delta"] or {}).get("content") or "")
            else:
                parts.append(choice.get("text") or "")
        if event.get("usage"):
            usage = event["usage"]
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": "".join(p)}} for i, p in sorted(texts.items())]
    else:
        choices = [{"index": i, "text": "".join(p)} for i, p in sorted(texts.items())]
    return {"choices": choices, "usage": usage}
