"""The sandbox worker: a server process that runs each candidate in a fresh forked child.

    python -m sandbox.worker '{"namespaces": true, ...}'   # started by SandboxPool, never by hand

The argument is the IsolationConfig as JSON. The worker first wraps itself
(sandbox.namespaces: it then runs as PID 1 of its own namespaces, under a
small launcher), then prepares the per-child layers (sandbox.layers).

It reads pickled requests from stdin and answers in JSON on stdout, both as
length-prefixed frames (`sandbox.protocol`):

- {"op": "inputs", "key": str, "inputs": {name: value}}: cache the inputs
  under `key` (the last INPUTS_CACHED sets are kept); no reply.
- {"op": "run", "program": str, "entry": str, "key": str, "limits": {...}}:
  run `entry` on the inputs cached under `key`; reply with the outcome
  (`encode_outcome`), or MISSING_INPUTS if that key is no longer cached.
  A `sandbox.program.Program` (what the loop sends) carries its spec's code
  apart: the worker compiles that once per spec (`Templates`, which also
  preloads the spec's own imports) and each child compiles the function.

At start it imports PRELOAD, so that every forked child starts warm (later
also the modules programs keep importing: `Learned`), and then announces
{"ready": true, "pid": ..., "layers": {...}} (Layers.to_json).
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import pickle
import re
import select
import signal
import sys
from collections import OrderedDict
from typing import Any

from sandbox import layers, namespaces, procs
from sandbox.isolation import IsolationConfig
from sandbox.child import CANDIDATE_FILE, Source
from sandbox.layers import ChildPlan
from sandbox.program import Program, Templates
from sandbox.protocol import MISSING_INPUTS, encode_outcome, read_frame, write_frame
from sandbox.result import Limits
from sandbox.supervise import Supervisor

log = logging.getLogger(__name__)

# Imported once here, so that candidates find them warm: numpy and the stdlib
# modules that numeric heuristics use. Not scipy: it makes every fork about
# 0.9 ms dearer (more pages to map and tear down), and most specs never touch
# it; programs that do import it get it preloaded by `Learned` below.
PRELOAD = (
    "itertools", "math", "cmath", "dataclasses", "functools", "collections", "heapq", "bisect", "random",
    "statistics", "fractions", "decimal", "operator", "typing", "re", "json", "copy", "string", "enum", "array",
    "encodings.idna", "numpy",
)
# Other packages the worker may preload once programs keep importing them, and
# stdlib modules it never imports itself (they act on import, or pull a GUI).
LEARNABLE_PACKAGES = frozenset({"scipy", "sympy", "mpmath", "networkx", "numba", "evolve"})
NEVER_PRELOADED = frozenset({"antigravity", "this", "turtle", "turtledemo", "tkinter", "idlelib", "webbrowser",
                             "pydoc", "pdb", "code", "doctest", "unittest", "ensurepip", "venv", "lib2to3"})
LEARN_AFTER = 2  # programs that import a module before the worker preloads it
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)[ \t]+import|import[ \t]+([^#;\n]+))",
                     re.MULTILINE)
INPUTS_CACHED = 8  # distinct input sets kept per worker
MAX_REQUEST_BYTES = (1 << 32) - 1  # requests come from the trusted loop: the header's own bound


def main() -> None:
    """Serve requests until the loop closes stdin."""
    logging.basicConfig(format="sandbox.worker[%(process)d] %(levelname)s %(message)s")
    # Ctrl-C reaches the whole foreground process group; the loop decides
    # what happens then and shuts workers down by closing their stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = IsolationConfig.from_json(json.loads(sys.argv[1])) if len(sys.argv) > 1 else IsolationConfig()
    ns = None
    if config.namespaces:  # forks: from here on this is the worker, PID 1 of its namespace
        ns = namespaces.enter(config.scratch_mb, config.scratch_inodes, config.read_only_root,
                              namespaces.needed_paths(), (config.uid, config.gid))
    requests, replies = _claim_stdio()
    _preload()
    procs.become_subreaper()
    plan, active = layers.prepare(config, ns)
    # Mark everything imported so far as permanent: a child's garbage
    # collections then leave the inherited pages alone instead of copying them.
    gc.freeze()
    write_frame(replies, json.dumps({"ready": True, "pid": os.getpid(), "layers": active.to_json()}).encode())
    try:
        serve(requests, replies, plan)
    finally:
        layers.cleanup(plan)


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


class Learned:
    """Modules the programs keep importing: imported here once, so that each child finds them warm.

    The worker reads the import statements of each program (a regular
    expression, not a parse: a false hit only names a module) and imports a
    module once LEARN_AFTER programs asked for it, if it is an allowed one:
    a stdlib module (but NEVER_PRELOADED) or one of LEARNABLE_PACKAGES. The
    candidate picks at most which of those trusted modules load here; they
    load from the interpreter's own paths, never from the candidate's files.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.done: set[str] = set()
        self._allowed = (set(sys.stdlib_module_names) - NEVER_PRELOADED) | LEARNABLE_PACKAGES

    def see(self, program: str, after: int = LEARN_AFTER) -> None:
        """Count the modules `program` imports; preload those asked for `after` times (1: the spec's own)."""
        for dotted, plain in _IMPORT.findall(program):
            names = [dotted] if dotted else [part.split()[0] for part in plain.split(",") if part.strip()]
            for name in names:
                if name in sys.modules or name in self.done or name.split(".")[0] not in self._allowed:
                    continue
                self.counts[name] = count = self.counts.get(name, 0) + 1
                if count >= after:
                    self.done.add(name)
                    try:
                        importlib.import_module(name)
                    except Exception as exc:  # noqa: BLE001 (not installed, or broken: the child reports it)
                        log.debug("not preloading %s: %s", name, exc)
                    gc.freeze()  # as at start: children leave the new pages alone


def _source(program: str, templates: Templates, learned: Learned) -> Source:
    """What the child runs: a Program's compiled template and function, or a plain program's text."""
    if not isinstance(program, Program):
        learned.see(program)
        return program
    template, first_sight = templates.get(program)
    if first_sight:  # the spec's own imports run in every child
        learned.see(program.head + program.tail, after=1)
    learned.see(program.function)
    return str(program) if template is None else (template, program.function)


def serve(requests: int, replies: int, plan: ChildPlan) -> None:
    """Answer framed requests from `requests` on `replies` until EOF."""
    cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
    learned = Learned()
    templates = Templates(CANDIDATE_FILE)
    supervisor = Supervisor(plan)
    poller = select.poll()
    poller.register(requests, select.POLLIN)
    while True:
        if supervisor.pending and not poller.poll(0):
            supervisor.finish()  # idle: reap the last child now rather than before the next fork
        frame = read_frame(requests, MAX_REQUEST_BYTES)
        if frame is None:
            break
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
            source = _source(request["program"], templates, learned)
            evaluation = supervisor.run(source, request["entry"], inputs, limits)
            write_frame(replies, encode_outcome(evaluation))
        else:
            raise ValueError(f"unknown sandbox request {op!r}")
    supervisor.finish()


if __name__ == "__main__":
    main()
