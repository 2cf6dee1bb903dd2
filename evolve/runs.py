"""The library API: start, resume or open a run from Python. The CLI is a thin layer over these calls.

    import evolve

    with evolve.start("bin_packing_or", "runs/demo.db", evolve.RunConfig()) as run:
        run.run()                                  # "budget", "time" or "stopped"
        print(run.status().to_json())              # what `evolve status --json` prints
    with evolve.resume("runs/demo.db", budget=4000) as run:
        run.run()
    with evolve.load("runs/demo.db") as run:       # read-only, also while another process evolves it
        print(run.best(top=3, split="test")[0].to_json())

A run that evolves holds the archive's run lock and a sandbox pool from
`start`/`resume` until `close` (or the end of the `with` block); its
proposer's servers and engines start on the first batch and stop at
`close`. `interrupt()` (from a signal handler or another thread) makes the
`run()` in progress stop soon: the batch in the sandbox is committed, the
one being proposed is dropped.

A refused call changes nothing: `resume` takes the run lock before it checks
or stores anything, and stores a new budget, model or server only once the
run may go on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evolve import session
from evolve.archive import Archive
from evolve.config import RunConfig
from evolve.errors import ConfigError
from evolve.executor import Evaluator
from evolve.loop import Evolution, Stats, stats_from_state
from evolve.proposers.build import model_overrides
from evolve.recorded import recorded_config, recorded_spec
from evolve.spec import Spec
from evolve.status import Status, read_status
from finetune.rounds import export_adapters
from sandbox import Layers

ProgressFn = Callable[[Stats, float], None]


class Run:
    """One run: its archive, spec and configuration; and, when it evolves, its lock, sandbox pool and loop."""

    def __init__(self, archive: Archive, spec: Spec, config: RunConfig, *, fresh: bool | None = None,
                 api_key: str | None = None) -> None:
        self.archive, self.spec, self.config = archive, spec, config
        self._stack = contextlib.ExitStack()
        self._pool: Evaluator | None = None
        self.evolution: Evolution | None = None
        self._interrupted = False
        if fresh is None:  # read-only
            return
        try:
            self._stack.enter_context(session.run_lock(archive.path))
            self._pool = self._stack.enter_context(session.pool_for(config))
            self.evolution = session.open_evolution(archive, spec, config, self._pool, fresh, api_key)
            self._stack.callback(self.evolution.proposer.close)
        except BaseException:
            self._stack.close()
            raise

    @property
    def path(self) -> Path:
        return self.archive.path

    @property
    def layers(self) -> Layers:
        """The sandbox isolation layers in force (a run that only reads starts a pool to tell)."""
        return self._evaluator().layers

    @property
    def nodes(self) -> Mapping[str, int]:
        """Ray nodes and their sandbox workers ({} for the local pool or a run that only reads)."""
        return self._pool.nodes if self._pool is not None else {}

    @property
    def stats(self) -> Stats:
        if self.evolution is not None:
            return self.evolution.stats
        state = self.archive.state()
        return stats_from_state(state) if "stats" in state else Stats()

    def run(self, should_stop: Callable[[], bool] = lambda: False, on_progress: ProgressFn | None = None) -> str:
        """Evolve until the budget, the time limit, `should_stop()` or `interrupt()`; return which ("stopped" for both)."""
        if self.evolution is None:
            raise ConfigError(f"{self.path} was opened read-only (evolve.load): use evolve.resume to evolve it")
        return self.evolution.run(lambda: self._interrupted or should_stop(), on_progress)

    def interrupt(self) -> None:
        """Stop `run()` soon, from another thread or a signal handler: the proposer abandons its batch."""
        self._interrupted = True
        if self.evolution is not None:
            self.evolution.proposer.interrupt()

    def status(self) -> Status:
        """Return the run's status, as `evolve status` shows it."""
        return read_status(self.archive, self.spec)

    def best(self, top: int = 1, split: str = "train") -> list[session.BestProgram]:
        """Return the `top` best programs; a split other than train re-runs them there, in the sandbox."""
        session.require_split(self.spec, split)
        return session.best_programs(self.archive, self.spec, top, split, self._evaluator() if split != "train" else None)

    def baselines(self, split: str = "test") -> list[session.Result]:
        """Evaluate the spec's own function and its @evolve.baseline functions on `split`, in the sandbox."""
        session.require_split(self.spec, split)
        return session.evaluate_functions(self.spec, self.spec.baseline_functions(), split, self._evaluator())

    def export(self, out_dir: str | Path, top: int = 10, adapters: bool = False) -> list[Path]:
        """Write the best programs as runnable files (and, with `adapters`, the LoRA rounds); return the paths."""
        written = session.export(self.archive, Path(out_dir), top)
        return written + self.export_adapters(out_dir) if adapters else written

    def export_adapters(self, out_dir: str | Path) -> list[Path]:
        """Copy the run's LoRA rounds to OUT_DIR/adapters/round_k (PEFT directories, plus adapter.gguf for llama.cpp)."""
        return export_adapters(self.archive, Path(out_dir))

    def close(self) -> None:
        """Stop the proposer, the sandbox pool and release the run lock; safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _evaluator(self) -> Evaluator:
        if self._pool is None:
            self._pool = self._stack.enter_context(session.pool_for(self.config, local=True))
        return self._pool


def start(spec: str | Path, db: str | Path, config: RunConfig | None = None, *, inputs: str | Path | None = None,
          api_key: str | None = None) -> Run:
    """Create the archive `db` for a new run of `spec` (a built-in name or a spec file), start its pool and seed it."""
    config = config or RunConfig()
    archive, loaded = session.new_run(str(spec), Path(db), config, Path(inputs) if inputs else None)
    return Run(archive, loaded, config, fresh=True, api_key=api_key)


def resume(db: str | Path, *, budget: int | None = None, time_limit_s: float | None = None,
           workers: int | None = None, model: str | None = None, api_base: str | None = None,
           overrides: Mapping[str, Mapping[str, Any]] | None = None, api_key: str | None = None) -> Run:
    """Continue a stopped, killed or finished run; a new budget, model or server is kept for later resumes.

    A run killed before its first commit (it never finished seeding) is seeded now.

    `overrides` ({part: {field: value}}) changes other settings for this session only (e.g. the executor).
    """
    archive = Archive.open(Path(db))
    with session.run_lock(archive.path):  # a live run refuses here, before anything is checked or stored
        loop: dict[str, Any] = {}
        if budget is not None:
            loop["budget"] = budget
        if time_limit_s is not None:
            loop["time_limit_s"] = time_limit_s
        parts: dict[str, Any] = {"loop": loop, **({"sandbox": {"workers": workers}} if workers else {})}
        config = recorded_config(archive, parts).replace(**(overrides or {}))
        config = config.replace(**model_overrides(config.proposer, model, api_base))
        state = archive.state()
        done = stats_from_state(state).samples if "stats" in state else 0
        fresh = not archive.seeded()  # killed before its first commit: seed it now
        if done >= config.loop.budget:
            raise ConfigError(f"{archive.path} has used its budget of {config.loop.budget} samples; "
                              f"pass --budget N (> {done}) to extend it")
        spec = recorded_spec(archive)
    run = Run(archive, spec, config, fresh=fresh, api_key=api_key)  # takes the lock again, for the whole run
    if budget is not None or model or api_base:
        stored = recorded_config(archive, {"loop": {"budget": config.loop.budget}} if budget is not None else {})
        stored = stored.replace(**model_overrides(stored.proposer, model, api_base))
        with archive.transaction():
            archive.set_run("config", stored.to_dict())
    return run


def load(db: str | Path) -> Run:
    """Open a run read-only: status, best, export (works while another process evolves it)."""
    archive = Archive.open(Path(db), readonly=True)
    return Run(archive, recorded_spec(archive), recorded_config(archive, {}))
