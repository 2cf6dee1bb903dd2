"""A llama.cpp server that evoloop starts and stops itself: one child process on a loopback port, sized for the run.

    with LlamaServer(LlamaServerConfig(model="m.gguf", slots=4, ctx_per_slot=2048)) as server:
        httpx.post(server.base_url + "/v1/completions", json={"prompt": "def f(x):", "max_tokens": 64})

The child (`llamacpp_serve`) runs xllamacpp's in-process llama.cpp HTTP
server bound to 127.0.0.1 on a port the kernel picks. `start` waits for the
child's ready line and for ``/health`` within a deadline; a model that does
not load fails with one line that quotes the server's last stderr lines.
`stop` sends SIGTERM, then SIGKILL after a short grace; it is idempotent,
and runs at interpreter exit for any server still up.

Nothing outlives the parent: the child asks the kernel for SIGKILL when its
parent dies (PR_SET_PDEATHSIG). The kernel sends that signal when the
*thread* that forked the child exits, not only the process, so every child
is forked by one long-lived spawner thread of this module (it lives until
the interpreter exits), never by the caller's thread, which may be a
short-lived worker. The child also watches getppid(). It runs in its own
process group and ignores SIGINT, so a Ctrl-C in the terminal reaches the
loop only, and the loop stops the server when it decides to.

Slots are requests in flight; llama.cpp splits the context evenly, so the
total context is `slots * ctx_per_slot`, and `ctx_per_slot` must hold the
longest prompt plus `max_tokens` (`ctx_per_slot_for`). A LoRA adapter can
only be loaded at start: `restart(config.with_lora(...))` swaps it between
batches (0.8 s for Gemma 3 270M on 2 quiet cores, 1.5-2.5 s on loaded ones). Requests may scale
a loaded adapter with ``"lora": [{"id": 0, "scale": s}]``; scale 0 is the
base model, so a control arm can share the adapter arm's server.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import dataclasses
import importlib.util
import json
import logging
import os
import re
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evolve.errors import require
from evolve.gguf_info import GGUFError, read_header

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[llamacpp]'"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds evolve/
_TAIL_LINES = 200  # stderr lines kept for messages and `stderr_tail`
_LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [DIWE] ")  # llama.cpp's "0.00.116.774 E " (time, level)
_ERROR_LINE = re.compile(r"\berror\b|failed", re.IGNORECASE)


class LlamaServerError(Exception):
    """A llama.cpp server that cannot start or answer; the message is one line for the CLI."""


@dataclass(frozen=True)
class LlamaServerConfig:
    """How to size and load one llama.cpp server."""

    model: str  # path to a GGUF model file
    slots: int = 1  # requests decoded at once (llama.cpp's n_parallel)
    ctx_per_slot: int = 2048  # tokens of context per slot: the longest prompt plus max_tokens
    threads: int = 0  # CPU threads for decoding; 0: every core
    lora: tuple[str, ...] = ()  # GGUF LoRA adapter files, loaded at start (ids 0, 1, ... in requests)
    lora_scale: float = 1.0  # the scale of every adapter for requests that give none
    alias: str = ""  # the model name the server answers to ("" : the file's stem)
    batch: int = 2048  # prompt tokens per decode call (n_batch)
    cache_ram_mib: int = 256  # llama.cpp's host-memory prompt cache (its default, 8 GiB, would compete with the sandbox)
    warmup: bool = False  # run one empty decode at start (llama.cpp's default; a CPU run does not need it)
    start_timeout_s: float = 120.0  # the model must load and /health answer within this
    stop_grace_s: float = 2.0  # after SIGTERM, before SIGKILL

    def __post_init__(self) -> None:
        require(bool(self.model), "llamacpp: a model file is needed")
        require(self.slots >= 1, f"llamacpp.slots must be >= 1, got {self.slots}")
        require(self.ctx_per_slot >= 64, f"llamacpp.ctx_per_slot must be >= 64, got {self.ctx_per_slot}")
        require(self.threads >= 0 and self.batch >= 32, "llamacpp.threads must be >= 0 and llamacpp.batch >= 32")
        require(self.cache_ram_mib >= 0, "llamacpp.cache_ram_mib must be >= 0")
        require(self.start_timeout_s > 0 and self.stop_grace_s >= 0, "llamacpp timeouts must be positive")

    @property
    def n_ctx(self) -> int:
        """Return the server's whole context, shared evenly by the slots."""
        return self.slots * self.ctx_per_slot

    @property
    def model_name(self) -> str:
        """Return the name requests use for the model."""
        return self.alias or Path(self.model).stem

    def with_lora(self, paths: Sequence[str | Path], scale: float | None = None) -> LlamaServerConfig:
        """Return this config with other adapter files (none: the base model)."""
        return dataclasses.replace(self, lora=tuple(str(p) for p in paths),
                                   lora_scale=self.lora_scale if scale is None else scale)


def ctx_per_slot_for(longest_prompt_tokens: int, max_tokens: int, multiple: int = 256) -> int:
    """Return the context one slot needs for a prompt and its answer, rounded up to `multiple` tokens."""
    need = longest_prompt_tokens + max_tokens
    return max(multiple, -(-need // multiple) * multiple)


class LlamaServer:
    """One llama.cpp server child process; start, stop, restart with other adapters."""

    def __init__(self, config: LlamaServerConfig) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._base_url = ""
        self._slot_ctx: list[int] = []
        self._chat_template = ""
        self.start_seconds = 0.0  # how long the last start took

    # -- what callers read ---------------------------------------------------------------------------------

    @property
    def config(self) -> LlamaServerConfig:
        """Return the config the server runs (or will run) with."""
        return self._config

    @property
    def running(self) -> bool:
        """Tell whether the child process is up (it may still be loading)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Return the child's pid while it runs."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:PORT`` (no /v1); LlamaServerError if the server is not started."""
        if not self._base_url:
            raise LlamaServerError("the llama.cpp server is not running")
        return self._base_url

    @property
    def api_base(self) -> str:
        """Return the OpenAI-compatible base URL (``.../v1``)."""
        return self.base_url + "/v1"

    @property
    def port(self) -> int:
        """Return the loopback port the server listens on."""
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def slots(self) -> int:
        """Return the number of slots the running server reported."""
        return len(self._slot_ctx)

    @property
    def ctx_per_slot(self) -> int:
        """Return the context of one slot as the running server reported it."""
        return min(self._slot_ctx) if self._slot_ctx else 0

    @property
    def has_chat_template(self) -> bool:
        """Tell whether the model file carries its own chat template (a base model has none: use completions).

        Read from the GGUF metadata: llama.cpp's /props shows a ChatML
        fallback for a model without one, which would read as a template.
        """
        return bool(self._chat_template)

    def stderr_tail(self, n: int = 20) -> list[str]:
        """Return the server's last `n` stderr lines."""
        return list(self._stderr)[-n:]

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> float:
        """Start the server and wait until it answers /health; return the seconds it took.

        Raises LlamaServerError (the server stopped again) when the model or an
        adapter is not a usable GGUF file, or the server does not come up in time.
        """
        with self._lock:
            if self.running:
                return self.start_seconds
            started = time.monotonic()
            if importlib.util.find_spec("xllamacpp") is None:
                raise LlamaServerError(f"the llama.cpp server needs xllamacpp: {INSTALL_HINT}")
            self._check_files()
            self._spawn()
            try:
                self._base_url = self._wait_ready(started + self._config.start_timeout_s)
                self._wait_health(started + self._config.start_timeout_s)
                self._slot_ctx = self._read_slots()
            except BaseException:
                self.stop()
                raise
            self.start_seconds = time.monotonic() - started
            _LIVE.add(self)
            log.info("llama.cpp server up at %s in %.1f s: %s, %d slots x %d tokens%s", self._base_url,
                     self.start_seconds, Path(self._config.model).name, self.slots, self.ctx_per_slot,
                     f", adapters {', '.join(Path(p).name for p in self._config.lora)}" if self._config.lora else "")
            return self.start_seconds

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after the grace period. Safe to call at any time, again and again."""
        with self._lock:
            proc, self._proc = self._proc, None
            self._base_url = ""
            self._slot_ctx = []
            _LIVE.discard(self)
            if proc is None:
                return
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self._config.stop_grace_s)
                except subprocess.TimeoutExpired:
                    log.warning("llama.cpp server %d ignored SIGTERM; killing it", proc.pid)
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            if self._drain is not None:
                self._drain.join(timeout=5)
                self._drain = None
            log.debug("llama.cpp server %d stopped (exit status %s)", proc.pid, proc.returncode)

    def restart(self, config: LlamaServerConfig | None = None) -> float:
        """Stop the server and start it again (with `config`, e.g. `config.with_lora([...])`); return the seconds taken."""
        with self._lock:
            began = time.monotonic()
            self.stop()
            if config is not None:
                self._config = config
            self.start()
            return time.monotonic() - began

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside start --------------------------------------------------------------------------------------

    def _check_files(self) -> None:
        """Refuse a model or adapter file that is missing or not GGUF before starting anything."""
        c = self._config
        try:
            header = read_header(c.model)
        except GGUFError as e:
            raise LlamaServerError(f"model: {e}") from None
        if header.file_type != "model":
            raise LlamaServerError(f"{c.model} is a GGUF {header.file_type}, not a model")
        self._chat_template = header.chat_template
        for path in c.lora:
            try:
                adapter = read_header(path)
            except GGUFError as e:
                raise LlamaServerError(f"adapter: {e}") from None
            if adapter.file_type != "adapter" or adapter.metadata.get("adapter.type") != "lora":
                raise LlamaServerError(f"{path} is not a GGUF LoRA adapter (general.type={adapter.file_type!r})")
            if adapter.architecture != header.architecture:
                raise LlamaServerError(f"adapter {Path(path).name} is for {adapter.architecture}, "
                                       f"the model is {header.architecture}")

    def _spawn(self) -> None:
        c = self._config
        payload = {**dataclasses.asdict(c), "model": str(Path(c.model).resolve()),
                   "lora": [str(Path(p).resolve()) for p in c.lora], "alias": c.model_name}
        argv = [sys.executable, "-m", "evolve.proposers.llamacpp_serve", json.dumps(payload), str(os.getpid())]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        self._stderr.clear()
        try:
            self._proc = _spawner().submit(
                subprocess.Popen, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, process_group=0, close_fds=True,
            ).result()
        except OSError as e:
            raise LlamaServerError(f"cannot start the llama.cpp server process: {e}") from None
        self._drain = threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True,
                                       name=f"llamacpp-stderr-{self._proc.pid}")
        self._drain.start()

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the server's stderr flowing (a full pipe would block it) and its tail for messages."""
        assert proc.stderr is not None
        try:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self._stderr.append(line)
                    log.debug("llama.cpp[%d]: %s", proc.pid, line)
        except (OSError, ValueError):  # closed by stop()
            pass

    def _failure(self, what: str) -> LlamaServerError:
        """Return the error for a server that did not come up, quoting the first error line of its stderr.

        llama.cpp logs the cause first ("error loading model: tensor ... is not
        within the file bounds") and generic lines after it.
        """
        time.sleep(0.2)  # let the drain thread take the last lines of a child that just exited
        lines = [_LOG_PREFIX.sub("", ln) for ln in self.stderr_tail(_TAIL_LINES)]
        errors = [ln for ln in lines if _ERROR_LINE.search(ln)]
        cause = errors[0] if errors else " | ".join(lines[-2:])
        return LlamaServerError(f"llama.cpp server {what} ({Path(self._config.model).name})" + (f": {cause}" if cause else ""))

    def _wait_ready(self, deadline: float) -> str:
        """Read the child's ready line; return the address it listens on."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(f"did not load within {self._config.start_timeout_s:.0f} s")
                if sel.select(timeout=min(left, 0.2)):
                    line = proc.stdout.readline()
                    if not line:  # EOF: the child exited
                        proc.wait(5)
                        raise self._failure(f"exited with status {proc.returncode} while loading")
                    try:
                        return str(json.loads(line)["address"])
                    except (ValueError, KeyError):
                        raise self._failure(f"wrote an unexpected ready line {line[:80]!r}") from None
                if proc.poll() is not None:
                    raise self._failure(f"exited with status {proc.returncode} while loading")

    def _wait_health(self, deadline: float) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                try:
                    if client.get(self._base_url + "/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise self._failure("did not answer /health in time")
                if not self.running:
                    raise self._failure("exited before answering /health")
                time.sleep(0.1)

    def _read_slots(self) -> list[int]:
        try:
            slots = httpx.get(self._base_url + "/slots", timeout=10.0).json()
            return [int(s["n_ctx"]) for s in slots]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise LlamaServerError(f"llama.cpp server at {self._base_url} gave no slot list: {e}") from None

    # -- adapters in requests ------------------------------------------------------------------------------

    def lora_adapters(self) -> list[dict[str, Any]]:
        """Return the server's loaded adapters (``/lora-adapters``: id, path, scale)."""
        try:
            return list(httpx.get(self.base_url + "/lora-adapters", timeout=10.0).json())
        except (httpx.HTTPError, ValueError) as e:
            raise LlamaServerError(f"llama.cpp server gave no adapter list: {e}") from None


def lora_field(scales: Sequence[float]) -> list[dict[str, float]]:
    """Return a request's ``"lora"`` field that scales the loaded adapters 0, 1, ... (0 turns one off)."""
    return [{"id": i, "scale": float(s)} for i, s in enumerate(scales)]


# Every server is forked by this one thread: PR_SET_PDEATHSIG fires when the forking *thread* exits, and this
# one lives until the interpreter does (idle executor threads wait for work; they are not retired).
_SPAWNER: concurrent.futures.ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[LlamaServer] = weakref.WeakSet()


def _spawner() -> concurrent.futures.ThreadPoolExecutor:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp-spawner")
        return _SPAWNER


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
