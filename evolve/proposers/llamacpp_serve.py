"""The llama.cpp server process that `llamacpp_server.LlamaServer` starts: xllamacpp's in-process server, and a watch on the parent.

    python -m evolve.proposers.llamacpp_serve CONFIG_JSON PARENT_PID    # what LlamaServer runs; not for people

CONFIG_JSON is `LlamaServerConfig` as a JSON object. Once the model is
loaded and the HTTP listener is up, the process writes one JSON line,
``{"address": "http://127.0.0.1:PORT"}``, to its original stdout, and then
serves until SIGTERM/SIGKILL from the parent, or until the parent is gone.
llama.cpp's own logs go to stderr (its stdout is pointed there too, so that
nothing can garble the ready line).

Why it is its own process: the loop must be able to stop it at once
(`Server` has no stop method; its destructor waits for requests in flight)
and a crashed loop must not leave it holding the port and 250 MB of model.
The kernel kills it when the parent dies (PR_SET_PDEATHSIG, set here, at
the very start; then getppid() is checked against PARENT_PID, in case the
parent died before the flag was set); a poll of getppid() while serving
backs that up. SIGINT is ignored: a Ctrl-C in the terminal is the loop's
to handle, and the loop stops the server when it decides to.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
POLL_S = 0.5  # how often the serving process looks at its parent


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when `parent` dies; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) != 0:
        sys.stderr.write(f"warning: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}\n")
    if os.getppid() != parent:  # the parent died before the flag was set: nobody would deliver the signal
        os._exit(3)


def params_from(config: dict[str, Any]) -> Any:
    """Build xllamacpp's CommonParams from a LlamaServerConfig as a dict."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = config["model"]
    p.n_parallel = config["slots"]
    p.n_ctx = config["slots"] * config["ctx_per_slot"]  # llama.cpp splits n_ctx evenly over the slots
    p.n_batch = config["batch"]
    p.n_ubatch = min(config["batch"], 512)
    threads = config["threads"] or os.cpu_count() or 1
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.hostnames = ["127.0.0.1"]
    p.port = 0  # the kernel picks a free port; the ready line reports it
    p.model_alias = {config["alias"]}
    p.cache_ram_mib = config["cache_ram_mib"]
    p.offline = True  # never reach a model hub
    p.ui = False
    p.fit_params = False  # keep n_ctx as given (fitting may change it to fit device memory)
    p.warmup = config["warmup"]
    p.endpoint_slots = True
    p.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(path, config["lora_scale"]) for path in config["lora"]]
    return p


def main(argv: list[str]) -> int:
    """Serve until the parent stops this process or dies."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m evolve.proposers.llamacpp_serve CONFIG_JSON PARENT_PID\n")
        return 2
    parent = int(argv[1])
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    config = json.loads(argv[0])
    try:
        import xllamacpp

        server = xllamacpp.Server(params_from(config))
    except ImportError as e:
        sys.stderr.write(f"error: cannot import xllamacpp: {e}\n")
        return 1
    except Exception as e:  # noqa: BLE001  (what the extension raises is not documented; report it and exit)
        sys.stderr.write(f"error: llama.cpp server failed to start: {type(e).__name__}: {e}\n")
        return 1
    ready.write(json.dumps({"address": server.listening_address}) + "\n")
    ready.flush()
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(0)  # the parent is gone: do not wait for requests in flight


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
