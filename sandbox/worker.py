"""The sandbox worker: a server process that runs each candidate in a fresh forked child.

    python -m sandbox.worker    # started by SandboxPool, never by hand

It reads pickled requests from stdin and answers in JSON on stdout, both as
length-prefixed frames (`sandbox.protocol`):

- {"op": "inputs", "key": str, "inputs": {name: value}}: cache the inputs
  under `key` (the last INPUTS_CACHED sets are kept); no reply.
- {"op": "run", "program": str, "entry": str, "key": str, "limits": {...}}:
  run `entry` on the inputs cached under `key`; reply with the outcome
  (`encode_outcome`), or MISSING_INPUTS if that key is no longer cached.

At start it imports PRELOAD, so that every forked child starts warm, and
then announces {"ready": true, "pid": ...}.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import pickle
import signal
from collections import OrderedDict
from typing import Any

from sandbox import procs
from sandbox.protocol import MISSING_INPUTS, encode_outcome, read_frame, write_frame
from sandbox.result import Limits
from sandbox.supervise import supervise

log = logging.getLogger(__name__)

PRELOAD = ("itertools", "math", "dataclasses", "numpy", "scipy", "scipy.optimize", "scipy.special")
INPUTS_CACHED = 8  # distinct input sets kept per worker
MAX_REQUEST_BYTES = (1 << 32) - 1  # requests come from the trusted loop: the header's own bound


def main() -> None:
    """Serve requests until the loop closes stdin."""
    logging.basicConfig(format="sandbox.worker[%(process)d] %(levelname)s %(message)s")
    # Ctrl-C reaches the whole foreground process group; the loop decides
    # what happens then and shuts workers down by closing their stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = _claim_stdio()
    _preload()
    procs.become_subreaper()
    # Mark everything imported so far as permanent: a child's garbage
    # collections then leave the inherited pages alone instead of copying them.
    gc.freeze()
    write_frame(replies, json.dumps({"ready": True, "pid": os.getpid()}).encode())
    serve(requests, replies)


def _claim_stdio() -> tuple[int, int]:
    """Move the protocol pipes off fds 0 and 1, so a stray print cannot corrupt a frame."""
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything printed goes to stderr, next to the log
    os.close(devnull)
    return requests, replies


def _preload() -> None:
    """Import the PRELOAD modules that are installed."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("not preloading %s: not installed", name)


def serve(requests: int, replies: int) -> None:
    """Answer framed requests from `requests` on `replies` until EOF."""
    cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
    while (frame := read_frame(requests, MAX_REQUEST_BYTES)) is not None:
        request = pickle.loads(frame)  # trusted: only the loop writes to this pipe
        op = request["op"]
        if op == "inputs":
            cache[request["key"]] = request["inputs"]
            cache.move_to_end(request["key"])
            while len(cache) > INPUTS_CACHED:
                cache.popitem(last=False)
        elif op == "run":
            inputs = cache.get(request["key"])
            if inputs is None:
                write_frame(replies, MISSING_INPUTS)
                continue
            cache.move_to_end(request["key"])
            limits = Limits(**request["limits"])
            evaluation = supervise(request["program"], request["entry"], inputs, limits)
            write_frame(replies, encode_outcome(evaluation))
        else:
            raise ValueError(f"unknown sandbox request {op!r}")


if __name__ == "__main__":
    main()
