"""Run LoRA rounds next to the loop, without blocking it, and switch the proposer to each new adapter.

    rounds = FinetuneRounds(config.finetune, db, base_model)
    evolution.hooks.append(rounds)      # session.open_evolution does this

The loop calls `on_batch` inside each batch's transaction. Every
`finetune.every` evaluated programs (and none in flight) it starts
`python -m finetune.train` as a child process that reads the archive
read-only; later batches poll it (never wait). When it has finished, the
round's `adapters` row goes into that batch's transaction and every
proposer of the run that can (`use_adapter`) switches to the adapter for
its next batch. A round that crashes, is killed, or finds no data is an
event in the archive and a log line, never the end of the run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from evolve.archive import Archive, Event
from evolve.config import RunConfig
from evolve.errors import ConfigError
from evolve.lock import RunBusy, is_running, run_lock
from evolve.loop import Evolution
from evolve.proposers.base import Proposer, ProposerError
from evolve.recorded import recorded_config
from finetune.config import FinetuneConfig
from finetune.request import NO_DATA, RoundRequest
from finetune.train import train_round
from sandbox.procs import alive

log = logging.getLogger(__name__)
LOG_TAIL = 400  # characters of a failed round's log kept in its event


def adapters_dir(db: Path, config: FinetuneConfig) -> Path:
    """Return where a run's rounds go: `finetune.out_dir`, else `<db folder>/<db stem>-adapters`."""
    return Path(config.out_dir) if config.out_dir else Path(db).resolve().parent / f"{Path(db).stem}-adapters"


def next_round(archive: Archive, directory: Path) -> int:
    """Return the next round number: after every recorded round and every directory already there."""
    recorded = [r.round for r in archive.adapters()]
    present = [int(p.name.split("_")[1]) for p in directory.glob("round_*") if p.name.split("_")[1].isdigit()]
    return max([0, *recorded, *present]) + 1


def switch(proposer: Proposer, path: str, control_share: float) -> list[str]:
    """Tell every part of the run's proposer that samples from adapters to use the one at `path`; return the errors."""
    errors = []
    users = proposer.adapter_users()
    if not users:
        log.warning("no proposer of this run can switch to %s; it is recorded and exported all the same", path)
        return [f"{proposer.name} cannot switch adapters"]
    for user in users:
        try:
            user.use_adapter(path, control_share=control_share)
        except ProposerError as exc:
            log.warning("%s could not switch to %s: %s", user.name, path, exc)
            errors.append(f"{user.name}: {exc}")
    return errors


class FinetuneRounds:
    """The loop's helper: starts rounds, polls them, records and applies their adapters."""

    def __init__(self, config: FinetuneConfig, db: Path, base: str) -> None:
        self.config, self.db, self.base = config, Path(db), base
        self.directory = adapters_dir(db, config)
        self._proc: subprocess.Popen[bytes] | None = None
        self._request: RoundRequest | None = None
        self._started_sample = 0
        self._last_start = 0  # evaluated programs when the last round started (or the session began)
        self._stopping = False

    def attach(self, evolution: Evolution) -> None:
        """Apply the run's latest adapter to the proposer (a resumed run continues where it was).

        A round that a killed loop left behind is taken up: recorded when it
        finished meanwhile, polled like its own while it still trains, an
        event when it died with the loop.
        """
        self._last_start = evolution.stats.evaluated
        before = evolution.archive.latest_adapter()
        left = unfinished_rounds(evolution.archive)
        if left:
            with evolution.archive.transaction():
                for event in left:
                    self._adopt(evolution, event)
        row = evolution.archive.latest_adapter()
        if row != before:
            return  # a round taken up has just been recorded and switched to
        if row and row.path and Path(row.path).is_dir():
            switch(evolution.proposer, row.path, self.config.control_share)

    def _adopt(self, evolution: Evolution, event: Event) -> None:
        """Take up the round of a `finetune-start` event that has no end (its loop was killed)."""
        k = event.data["round"]
        request_file = self.directory / f"round_{k}.json"
        try:
            request = RoundRequest.from_json(json.loads(request_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            evolution.archive.add_event("finetune-failed", evolution.stats.samples,
                                        {"round": k, "status": None, "log": f"left by a killed run; {request_file}: {exc}"})
            return
        orphan = _Orphan(int(event.data.get("pid") or 0), Path(request.out))
        self._proc, self._request, self._started_sample = orphan, request, event.sample  # type: ignore[assignment]
        if orphan.poll() is None:  # at most one round still trains: a loop starts none while it polls one
            log.info("round %d, left by the killed run, still trains (pid %d): polled from here on", k, orphan.pid)
        else:
            self._finish(evolution)  # finished while no loop ran (recorded now), or died with the loop (an event)

    @property
    def training(self) -> bool:
        return self._proc is not None

    def on_batch(self, evolution: Evolution) -> None:
        """Record a finished round, or start one when due (inside the batch transaction; never waits)."""
        if self._proc is not None and self._proc.poll() is not None:
            self._finish(evolution)
        if self._proc is None and self.config.every and evolution.stats.evaluated - self._last_start >= self.config.every:
            self._start(evolution)

    def on_stop(self, evolution: Evolution, reason: str) -> None:
        """At the end of a run: wait for the round in flight when the budget is done, else stop it."""
        if self._proc is None:
            return
        if reason == "budget" and self.config.wait_at_end_s > 0:
            try:
                self._proc.wait(timeout=self.config.wait_at_end_s)
            except subprocess.TimeoutExpired:
                pass
            except BaseException:  # a second Ctrl-C while waiting: leave no orphan behind
                self._proc.kill()
                raise
        if self._proc.poll() is None:
            self._stopping = True  # our own terminate: a stopped round, not a failed one
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._finish(evolution)

    def _start(self, evolution: Evolution) -> None:
        k = next_round(evolution.archive, self.directory)
        latest = evolution.archive.latest_adapter()
        parent = latest.path if latest and latest.path and Path(latest.path).is_dir() else ""
        out = self.directory / f"round_{k}"
        request = RoundRequest(str(Path(self.db).resolve()), self.base, str(out.resolve()), k, parent, self.config)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"round_{k}.json").write_text(json.dumps(request.to_json()))
        log_file = (self.directory / f"round_{k}.log").open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": str(self.config.threads), "TOKENIZERS_PARALLELISM": "false"}
        # Its own session: a Ctrl-C meant for the loop reaches the round through on_stop, not the terminal.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "finetune.train", str(self.directory / f"round_{k}.json")],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=_package_root(),
        )
        log_file.close()
        self._request, self._started_sample, self._last_start = request, evolution.stats.samples, evolution.stats.evaluated
        evolution.archive.add_event("finetune-start", evolution.stats.samples, {"round": k, "parent": parent, "pid": self._proc.pid})
        log.info("round %d started (pid %d) at sample %d", k, self._proc.pid, evolution.stats.samples)

    def _finish(self, evolution: Evolution) -> None:
        assert self._proc is not None and self._request is not None
        code, request = self._proc.returncode, self._request
        self._proc, self._request = None, None
        out, samples = Path(request.out), evolution.stats.samples
        meta_file = out / "meta.json"
        if code == 0 and meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            row = evolution.archive.add_adapter(meta, self._started_sample, samples)
            errors = switch(evolution.proposer, row.path or "", self.config.control_share)
            evolution.archive.add_event("adapter", samples, {"round": request.round, "path": row.path, "errors": errors})
            log.info("round %d recorded: %s examples, loss %.4g -> %.4g", request.round, meta["examples"],
                     meta["base_loss"], meta["adapter_loss"])
            return
        kind = "finetune-skipped" if code == NO_DATA else "finetune-stopped" if self._stopping else "finetune-failed"
        self._stopping = False
        tail = _tail(self.directory / f"round_{request.round}.log")
        if kind == "finetune-failed":
            log.warning("round %d failed (exit status %s); the run goes on: %s", request.round, code, tail[-200:])
        for stale in self.directory.glob(f".round_{request.round}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        evolution.archive.add_event(kind, samples, {"round": request.round, "status": code, "log": tail})


ROUND_ENDS = {"adapter", "finetune-skipped", "finetune-stopped", "finetune-failed"}


def unfinished_rounds(archive: Archive) -> list[Event]:
    """Return the `finetune-start` events whose round has no end event: rounds a killed loop left behind."""
    started: dict[int | None, Event] = {}
    for event in archive.events():
        round_ = event.data.get("round") if isinstance(event.data, dict) else None
        if event.kind == "finetune-start":
            started[round_] = event
        elif event.kind in ROUND_ENDS:
            started.pop(round_, None)
    return sorted(started.values(), key=lambda e: e.id)


class _Orphan:
    """A round's training process that is not this loop's child (its loop was killed): polled by pid.

    Its exit status is unknown; it counts as 0 when the adapter's meta.json
    is there (train writes it last, by rename), else as a failure.
    """

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.returncode: int | None = None

    def _alive(self) -> bool:
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return self.pid > 0 and b"finetune.train" in cmdline and alive(self.pid)

    def poll(self) -> int | None:
        if self.returncode is None and not self._alive():
            self.returncode = 0 if (self.out / "meta.json").is_file() else -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("finetune.train", timeout or 0)
            time.sleep(0.2)
        return self.returncode  # type: ignore[return-value]

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self._alive():
                os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self._alive():
                os.kill(self.pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL:]
    except OSError:
        return ""


def _package_root() -> str:
    """The folder that holds the `finetune` package, so that the child imports the same code."""
    return str(Path(__file__).resolve().parent.parent)


def base_model(config: RunConfig) -> str:
    """Return the checkpoint a run's rounds train: `finetune.base`, else its transformers, vllm or llamacpp model."""
    if config.finetune.base:
        return str(config.finetune.base)
    names = config.proposer.names
    if "transformers" in names and config.transformers.model:
        return str(config.transformers.model)
    if "vllm" in names and config.vllm.model:
        return str(config.vllm.model)
    if "llamacpp" in names:  # the GGUF file: the trainer makes (once) and trains its transformers checkpoint
        from evolve.proposers.llamacpp import model_file

        return str(model_file(config.llamacpp))
    return ""


def check_trainer(config: FinetuneConfig) -> None:
    """Refuse rounds this installation cannot train, before the run starts (not at its first round)."""
    needs = ("torch", "transformers", "peft", *(("trl", "datasets") if config.method == "dpo" else ()))
    missing = [name for name in needs if not _installed(name)]
    if missing:
        extras = "lm,dpo" if config.method == "dpo" else "lm"
        raise ConfigError(f"finetune.method {config.method!r} needs {', '.join(missing)}, not installed here: "
                          f"pip install torch==2.13.0 (CPU) && pip install -e '.[{extras}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked (None in sys.modules)
        return False


def attach_rounds(evolution: Evolution, config: RunConfig, db: Path) -> FinetuneRounds | None:
    """Hook rounds into a run when it asks for them (`finetune.every`), and re-apply its latest adapter."""
    has_rounds = evolution.archive.has_adapters()
    if not config.finetune.every and not has_rounds:
        return None
    base = base_model(config)
    if config.finetune.every and not base:
        raise ConfigError("finetune.every needs a base checkpoint to train: run the llamacpp, transformers or vllm proposer "
                          "with --model, or set finetune.base")
    if config.finetune.every:
        check_trainer(config.finetune)
    rounds = FinetuneRounds(config.finetune, db, base)
    rounds.attach(evolution)
    evolution.hooks.append(rounds)
    return rounds


def _with_gguf_adapter(directory: Path, base: str) -> None:
    """Write `directory`/adapter.gguf for a round whose base is a GGUF file, unless it is there already."""
    from evolve.gguf_info import is_gguf
    from evolve.proposers.llamacpp import GGUF_ADAPTER_NAME

    if (directory / GGUF_ADAPTER_NAME).is_file() or not is_gguf(base):
        return
    from finetune.gguf_adapter import AdapterConversionError, convert_adapter

    try:
        convert_adapter(directory, base, directory / GGUF_ADAPTER_NAME)
    except AdapterConversionError as exc:
        log.warning("%s: no llama.cpp adapter written: %s", directory, exc)


def finetune_now(db: Path, base: str = "", method: str = "", out: Path | None = None) -> dict[str, Any]:
    """Train one round now, in this process, and record it (`evolve finetune`): only while no loop runs on `db`.

    The run's own `[finetune]` settings apply; `base` and `method` override them.
    A live run is refused (it alone writes the archive): give it --finetune-every.
    """
    if is_running(db):
        raise RunBusy(f"{db} is being evolved right now and only its loop writes the archive; stop it, or resume it "
                      "with rounds during the run (--finetune-every N in the run's config, [finetune] every)")
    archive = Archive.open(db)
    with run_lock(db):
        config = recorded_config(archive)
        overrides = {k: v for k, v in (("base", base), ("method", method)) if v}
        config = config.replace(finetune=overrides)
        model = base_model(config)
        if not model:
            raise ConfigError("name the checkpoint to train with --base DIR (the run's proposer has no local model)")
        directory = adapters_dir(db, config.finetune)
        k = next_round(archive, directory)
        latest = archive.latest_adapter()
        parent = latest.path if latest and latest.path and Path(latest.path).is_dir() else ""
        if latest and latest.base_model != model:
            parent = ""  # an adapter of another base model cannot be continued
        target = Path(out) if out else directory / f"round_{k}"
        meta = train_round(RoundRequest(str(Path(db).resolve()), model, str(target.resolve()), k, parent, config.finetune))
        samples = archive.state().get("stats", {}).get("samples", 0)
        with archive.transaction():
            archive.add_adapter(meta, samples, samples)
            archive.add_event("adapter", samples, {"round": k, "path": meta["path"], "errors": [], "standalone": True})
    archive.close()
    return meta


def export_adapters(archive: Archive, out_dir: Path) -> list[Path]:
    """Copy every recorded round to OUT_DIR/adapters/round_k (each written whole, then renamed into place).

    A round trained for a GGUF model (the llamacpp proposer) also gets its
    llama.cpp LoRA GGUF, `adapter.gguf`, beside the PEFT files.
    """
    written = []
    for row in archive.adapters():
        source = Path(row.path or "")
        if not (source / "adapter_config.json").is_file():
            log.warning("round %s: %s is gone; not exported", row.round, source)
            continue
        target = Path(out_dir) / "adapters" / f"round_{row.round}"
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, tmp)
        _with_gguf_adapter(tmp, row.base_model or "")
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        written.append(target)
    return written
