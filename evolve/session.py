"""Library calls behind the CLI: start, resume and inspect runs, evaluate functions.

Each CLI command is a few lines over one function here; these raise
`SpecError`, `ConfigError`, `ArchiveError` or `RunBusy` for the user's
mistakes, which the CLI turns into one-line messages.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve import distributed
from evolve.archive import Archive, ArchiveError, ProgramRow
from evolve.executor import Evaluator
from evolve.config import RunConfig
from evolve.errors import ConfigError
from evolve.lock import RunBusy, is_running, run_lock
from evolve.loop import Evolution, stats_from_state
from evolve.parse import extract_function, function_names
from evolve.proposers.build import make_proposer
from evolve.recorded import recorded_spec
from evolve.spec import Spec, SpecError, load_spec
from finetune.rounds import attach_rounds, base_model, check_trainer
from islands import ProgramsDatabase
from sandbox import Evaluation, Limits, SandboxPool

@dataclass(frozen=True)
class Result:
    """A function's evaluation on a split, with the spec's metrics."""

    name: str
    split: str
    evaluation: Evaluation
    metrics: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        ev = self.evaluation
        out: dict[str, Any] = {
            "score": ev.score if ev.ok else None,
            "scores": dict(ev.scores),
            "metrics": dict(self.metrics),
            "split": self.split,
        }
        if not ev.ok:
            out["failure"] = ev.failure.value if ev.failure else None
            out["error"] = ev.error
        return out


# -- runs ----------------------------------------------------------------------


def new_run(target: str, db: Path, config: RunConfig, inputs_file: Path | None = None) -> tuple[Archive, Spec]:
    """Load the spec, create the archive and record what resume needs."""
    spec = load_spec(target, inputs_file)
    make_proposer(config, spec, np.random.default_rng(0))  # fail before creating files
    if config.finetune.every and not base_model(config):
        raise ConfigError("--finetune-every needs a base checkpoint to train: the llamacpp, transformers or vllm proposer "
                          "with --model, or finetune.base")
    if config.finetune.every:
        check_trainer(config.finetune)
    run = {
        "spec": {
            "name": spec.name, "path": str(spec.path), "builtin": spec.builtin, "source": spec.source,
            "inputs_file": str(Path(inputs_file).resolve()) if inputs_file else None,
        },
        "config": config.to_dict(),
    }
    db = Path(db)
    if db.exists():  # a run killed before its first commit is started again in place; anything else is refused
        with run_lock(db):
            return Archive.start_over(db, run), spec
    return Archive.create(db, run), spec



def open_evolution(
    archive: Archive, spec: Spec, config: RunConfig, pool: Evaluator, fresh: bool, api_key: str | None = None
) -> Evolution:
    """Build the loop over an archive: a fresh run (seeded) or a resumed one.

    `api_key` (for the openai proposer) is passed at each start, never stored.
    """
    rng = np.random.default_rng(config.loop.seed)
    if fresh:
        islands = ProgramsDatabase(config.islands, rng)
        proposer = make_proposer(config, spec, rng, api_key)
        evolution = Evolution(spec, archive, pool, proposer, islands, rng, config)
        evolution.seed()
        attach_rounds(evolution, config, archive.path)  # LoRA rounds (finetune.every)
        return evolution
    state = archive.state()
    if "rng" not in state:
        raise ArchiveError(f"{archive.path}: the run never finished seeding; `evolve resume {archive.path}` seeds it")
    rng.bit_generator.state = state["rng"]
    islands = Evolution.restore_islands(archive, config, rng)
    proposer = make_proposer(config, spec, rng, api_key)
    evolution = Evolution(spec, archive, pool, proposer, islands, rng, config, stats_from_state(state))
    attach_rounds(evolution, config, archive.path)  # re-applies the latest adapter
    return evolution


def pool_for(config: RunConfig, local: bool = False) -> Evaluator:
    """Start the run's sandbox pool (SandboxError if it cannot start, or would run unisolated unasked).

    With `executor.kind = "ray"` (and not `local`) that is a RayPool, one sandbox actor per node.
    """
    limits = config.sandbox.limits
    if config.executor.kind == "ray" and not local:
        return distributed.ray_pool(config.executor, limits, config.sandbox.isolation)  # Ray is imported only here
    return SandboxPool(config.sandbox.workers, limits, config.sandbox.isolation)


# -- evaluating functions -----------------------------------------------------------


def evaluate_functions(
    spec: Spec, functions: Mapping[str, str], split: str, pool: Evaluator, limits: Limits | None = None,
    first_lines: Mapping[str, int] | None = None,
) -> list[Result]:
    """Evaluate evolved-function sources on a split, in parallel, in the sandbox.

    A failure names its line in the function, or in its file for a function
    read from one at `first_lines[name]`.
    """
    inputs = spec.inputs(split)
    futures = {name: pool.submit(spec.program(src), spec.entry, inputs, limits) for name, src in functions.items()}
    results = []
    for name, future in futures.items():
        ev = spec.locate(spec.verify(split, future.result()), functions[name], (first_lines or {}).get(name))
        results.append(Result(name, split, ev, spec.metrics(split, ev.scores) if ev.ok else {}))
    return results


@dataclass(frozen=True)
class FileFunction:
    """The evolved function as read from a user's file."""

    source: str
    first_line: int | None  # its `def` line in the file, when the source is the file's lines as they are


def function_from_file(spec: Spec, path: Path) -> FileFunction:
    """Read the evolved function (by its name) from a file; refuse a file that does not define it."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    name = spec.function_name
    try:
        tree = ast.parse(text)
    except SyntaxError:  # not a Python file: a model's answer with prose or fences, read as the loop reads one
        tree = None
    if tree is None:
        defined = function_names(text)
        parsed = extract_function(text, name)
        if parsed.function is None:
            raise SpecError(path, None, f"no function found ({parsed.reason})", f"write `def {name}(...)`")
        if name not in defined:
            raise SpecError(path, None, f"defines no function `{name}` (found: {', '.join(defined)})",
                            f"name the function to evaluate `{name}`, as in the spec {spec.path.name}")
        return FileFunction(parsed.function, None)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    mine = [n for n in defs if n.name == name]
    if not mine:
        found = ", ".join(n.name for n in defs) or "no function at all"
        raise SpecError(path, None, f"defines no function `{name}` (found: {found})",
                        f"name the function to evaluate `{name}`, as in the spec {spec.path.name}")
    if len(mine) > 1:
        raise SpecError(path, mine[-1].lineno, f"defines `{name}` twice (lines {mine[0].lineno} and {mine[-1].lineno})",
                        "keep one definition")
    parsed = extract_function(text, name)
    if parsed.function is None:
        raise SpecError(path, mine[0].lineno, f"cannot use `{name}` ({parsed.reason})")
    lines = text.splitlines()
    as_written = "\n".join(lines[mine[0].lineno - 1 : mine[0].end_lineno]) + "\n"
    return FileFunction(parsed.function, mine[0].lineno if parsed.function == as_written else None)


# -- inspecting runs -------------------------------------------------------------------


@dataclass(frozen=True)
class BestProgram:
    """One of a run's best programs (by train score), scored on a split."""

    row: ProgramRow
    program: str  # the whole runnable file: the spec around the function
    split: str
    score: float | None  # on `split`; None when it failed there
    scores: Mapping[str, float]
    metrics: Mapping[str, Any]
    failure: str | None = None
    error: str | None = None

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def train_score(self) -> float | None:
        return self.row.score

    def to_json(self) -> dict[str, Any]:
        """What `evolve best --json` lists for each program."""
        r = self.row
        out = {
            "id": r.id, "island": r.island, "proposer": r.proposer, "sample": r.sample, "function": r.function,
            "program": self.program, "train_score": r.score, "score": self.score, "scores": dict(self.scores),
            "metrics": dict(self.metrics), "split": self.split,
        }
        if self.failure or self.error:
            out.update(failure=self.failure, error=self.error)
        return out


def best_programs(archive: Archive, spec: Spec, top: int, split: str, pool: Evaluator | None) -> list[BestProgram]:
    """Return the top programs (train scores), re-evaluated on `split` if it is not train (then `pool` is needed)."""
    rows = archive.top(top)
    if split == "train" or not rows:
        return [BestProgram(r, spec.program(r.function), "train", r.score, dict(r.scores), spec.metrics("train", r.scores))
                for r in rows]
    assert pool is not None
    results = evaluate_functions(spec, {str(r.id): r.function for r in rows}, split, pool)
    return [
        BestProgram(r, spec.program(r.function), split, res.evaluation.score if res.evaluation.ok else None,
                    dict(res.evaluation.scores), dict(res.metrics),
                    None if res.evaluation.ok else (res.evaluation.failure.value if res.evaluation.failure else None),
                    None if res.evaluation.ok else res.evaluation.error)
        for r, res in zip(rows, results, strict=True)
    ]


def export(archive: Archive, out_dir: Path, top: int) -> list[Path]:
    """Write the best programs as runnable .py files plus an index.json."""
    spec = recorded_spec(archive)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a parent that is a file, no permission
        raise ConfigError(f"cannot write to {out_dir}: {exc.strerror}; pass a directory to create or fill") from None
    written, index = [], []
    for rank, row in enumerate(archive.top(top), start=1):
        path = out_dir / f"{rank:03d}_program_{row.id}.py"
        _write_atomic(path, program_text(spec, row, rank))
        written.append(path)
        index.append({"rank": rank, "id": row.id, "file": path.name, "score": row.score, "scores": dict(row.scores)})
    _write_atomic(out_dir / "index.json", json.dumps({"problem": spec.name, "programs": index}, indent=2) + "\n")
    return written


def program_text(spec: Spec, row: ProgramRow, rank: int | None = None) -> str:
    """Return an archived program as a complete, runnable file with a header of where it came from."""
    score = f"{row.score:.6g}" if row.score is not None else f"none ({row.failure})"
    return (
        f"# evoloop export: problem {spec.name}, program {row.id}" + (f", rank {rank}" if rank else "") + "\n"
        f"# train score {score}; per input: {json.dumps(dict(row.scores))}\n"
        f"# island {row.island}, proposer {row.proposer}, sample {row.sample}\n"
    ) + spec.program(row.function)


def write_program(spec: Spec, row: ProgramRow, path: Path) -> Path:
    """Write one archived program to `path` (atomically) and return the path."""
    _write_atomic(path, program_text(spec, row))
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_duration(text: str) -> float:
    """Parse `90`, `90s`, `15m`, `2h` or `1d` into seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"cannot read the duration {text!r}; write e.g. 90s, 15m, 2h") from None
    if value <= 0:
        raise ConfigError(f"the duration must be positive, got {text!r}")
    return value


def require_split(spec: Spec, split: str) -> None:
    if not spec.has_split(split):
        spec.inputs(split)  # raises the SpecError that says what to do


__all__: Sequence[str] = [
    "RunBusy", "Result", "run_lock", "is_running", "make_proposer", "new_run", "open_evolution",
    "pool_for", "evaluate_functions", "function_from_file", "BestProgram", "best_programs", "export", "program_text",
    "write_program", "parse_duration",
]
