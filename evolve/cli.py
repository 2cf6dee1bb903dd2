"""The `evolve` command line: a thin layer over the library API (`evolve.runs`) and `evolve.session`.

    evolve run bin_packing_or --budget 2000
    evolve best runs/bin_packing_or.db --split test

A user's mistake (bad spec, bad config, missing archive) is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from evolve import __version__, cli_views as views, runs, session
from evolve.archive import ArchiveError
from evolve.cli_evolve import evolve_run
from evolve.cli_models import models
from evolve.config import RunConfig, load_config
from evolve.errors import ConfigError
from evolve.proposers.base import ProposerError
from evolve.proposers.build import model_overrides
from evolve.problems import BUILTINS
from evolve.spec import SpecError, load_spec
from sandbox import SandboxError
from finetune.request import FinetuneError

console = Console()
err_console = Console(stderr=True)
USER_ERRORS = (SpecError, ConfigError, ArchiveError, session.RunBusy, SandboxError, ProposerError, FinetuneError)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing exceptions (and a full disk) into one line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            _fail(str(exc))
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _fail(f"disk full: {exc.filename or 'a write'} failed; free space and run the command again")

    return wrapper


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


class _OneLineErrors(click.Group):
    """Click's group, but a usage mistake (`--budget abc`, an unknown option) is one line, exit status 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "evolve"
            _fail(f"{exc.format_message()} (see `{command} --help`)")
        except click.ClickException as exc:
            _fail(exc.format_message())
        except click.Abort:  # Ctrl-C at a prompt
            sys.exit(130)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evolve")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def main(verbose: bool) -> None:
    """Evolve programs with an island-model search (FunSearch-style).

    A run evolves one function of a problem spec (a built-in name or a .py
    file); every candidate runs in a sandbox and lands in an SQLite archive
    that `status`, `best` and `export` read while the run goes on.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# -- run / resume --------------------------------------------------------------------


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --executor and --ray-address (run and resume: a run can move between executors)."""
    command = click.option("--ray-address", help="Ray cluster to join with --executor ray: auto (the cluster this "
                           "machine joined with `ray start`), HOST:6379 or ray://HOST:10001 [default: start Ray on "
                           "this machine].")(command)
    return click.option("--executor", type=click.Choice(["local", "ray"]),
                        help="Where candidates are evaluated: local (a sandbox pool here) or ray (one sandbox pool "
                        "per node of a Ray cluster; needs the ray extra) [default: local].")(command)


@main.command()
@click.argument("spec")
@click.option("--db", type=click.Path(path_type=Path), help="Archive to create [default: runs/SPEC-TIME.db].")
@click.option("--proposer", help="Who writes candidates: gp (the CPU default), openai, transformers, vllm, "
              "or a weighted mix such as vllm:0.9,gp:0.1.")
@click.option("--model", envvar="EVOLVE_MODEL", help="Model of the language-model proposer(s): a server's model name, "
              "a checkpoint directory, or a hub name for vllm [env: EVOLVE_MODEL].")
@click.option("--api-base", envvar=["EVOLVE_API_BASE", "OPENAI_BASE_URL"],
              help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 [env: EVOLVE_API_BASE].")
@click.option("--api-key", envvar=["EVOLVE_API_KEY", "OPENAI_API_KEY"],
              help="API key for --api-base; never stored in the archive [env: EVOLVE_API_KEY, OPENAI_API_KEY].")
@click.option("--budget", type=int, help="Samples (candidates) to draw in total [default: 2000].")
@click.option("--time", "time_limit", help="Stop after this long, e.g. 90s, 15m, 2h.")
@click.option("--seed", type=int, help="Seed of the run's RNG [default: 0].")
@click.option("--workers", type=int, help="Parallel sandbox workers [default: CPU count].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file of settings (see README).")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path), help="JSON inputs for a spec without its own.")
@click.option("--finetune-every", type=click.IntRange(min=1),
              help="Train a LoRA round on the best programs every N evaluated programs, in its own process, and switch "
              "the transformers/vllm proposer to each new adapter (see README, Fine-tuning).")
@click.option("--allow-unisolated", is_flag=True,
              help="Run even where no sandbox isolation layer is available (see `evolve doctor`).")
@executor_options
@user_errors
def run(spec: str, db: Path | None, proposer: str | None, model: str | None, api_base: str | None,
        api_key: str | None, budget: int | None, time_limit: str | None,
        seed: int | None, workers: int | None, config_file: Path | None, inputs_file: Path | None,
        allow_unisolated: bool, executor: str | None, ray_address: str | None, finetune_every: int | None) -> None:
    """Start evolving SPEC (a built-in problem name or a spec .py file).

    Ctrl-C stops within seconds (the batch in the sandbox is kept); `evolve resume DB` continues.
    """
    config = load_config(config_file).replace(**_overrides(proposer, budget, time_limit, seed, workers))
    if allow_unisolated:
        isolation = {**config.sandbox.isolation.to_json(), "allow_unisolated": True}
        config = config.replace(sandbox={"isolation": isolation})
    config = config.replace(**model_overrides(config.proposer, model, api_base))
    if finetune_every:
        config = config.replace(finetune={"every": finetune_every})
    config = config.replace(**_executor_overrides(executor, ray_address))
    if db is None:
        db = Path("runs") / f"{Path(spec).stem}-{time.strftime('%Y%m%d-%H%M%S')}.db"
    evolve_run(lambda: runs.start(spec, db, config, inputs=inputs_file, api_key=api_key))


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--budget", type=int, help="New total budget in samples (to extend a finished run).")
@click.option("--time", "time_limit", help="Stop after this long, e.g. 90s, 15m, 2h.")
@click.option("--workers", type=int, help="Parallel sandbox workers.")
@click.option("--api-key", envvar=["EVOLVE_API_KEY", "OPENAI_API_KEY"],
              help="API key for the run's OpenAI-compatible server [env: EVOLVE_API_KEY, OPENAI_API_KEY].")
@executor_options
@click.option("--model", help="Another place for the run's model (a moved checkpoint directory, a renamed served "
              "model); kept for later resumes.")
@click.option("--api-base", help="Another OpenAI-compatible server for the run; kept for later resumes.")
@user_errors
def resume(db: Path, budget: int | None, time_limit: str | None, workers: int | None, api_key: str | None,
           executor: str | None, ray_address: str | None, model: str | None, api_base: str | None) -> None:
    """Continue a stopped, killed or finished run from its archive.

    A refused resume (the run is live, its budget is spent) changes nothing in the archive.
    """
    limit = session.parse_duration(time_limit) if time_limit is not None else None
    evolve_run(lambda: runs.resume(db, budget=budget, time_limit_s=limit, workers=workers, model=model, api_base=api_base,
                                overrides=_executor_overrides(executor, ray_address), api_key=api_key))


def _executor_overrides(executor: str | None, ray_address: str | None) -> dict[str, Any]:
    if ray_address is not None and executor == "local":
        raise ConfigError("--ray-address is for --executor ray")
    out: dict[str, Any] = {"kind": executor} if executor else {}
    if ray_address is not None:
        out.update(kind="ray", address=ray_address)
    return {"executor": out} if out else {}


def _overrides(proposer: str | None, budget: int | None, time_limit: str | None, seed: int | None,
               workers: int | None) -> dict[str, Any]:
    loop: dict[str, Any] = {}
    if budget is not None:
        loop["budget"] = budget
    if time_limit is not None:
        loop["time_limit_s"] = session.parse_duration(time_limit)
    if seed is not None:
        loop["seed"] = seed
    out: dict[str, Any] = {"loop": loop}
    if workers is not None:
        out["sandbox"] = {"workers": workers}
    if proposer is not None:
        out["proposer"] = proposer
    return out


# -- inspecting -----------------------------------------------------------------------


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def status(db: Path, as_json: bool) -> None:
    """Show a run's progress, best score and islands (works while it runs)."""
    with runs.load(db) as run:
        info = run.status()
    if as_json:
        click.echo(json.dumps(info.to_json()))
        return
    views.print_status(console, info)


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes.")
@user_errors
def tui(db: Path, interval: float) -> None:
    """Watch a run in the terminal: progress, islands, programs, failures (read-only; live or finished)."""
    from tui.app import run as run_tui  # Textual loads only for this command
    from tui.reader import ArchiveReader

    run_tui(db, interval, ArchiveReader.open(db))  # a file that is no archive fails here, before the app starts


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--top", default=1, show_default=True, help="How many programs.")
@click.option("--split", default="train", show_default=True, help="Score them on this split (test re-runs them).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def best(db: Path, top: int, split: str, as_json: bool) -> None:
    """Show the best programs of a run, scored on a split."""
    with runs.load(db) as run:  # re-running a few programs on a split uses a local sandbox pool
        programs = run.best(top, split)
        baselines = run.baselines(split) if programs and split != "train" and not as_json else []
    if not programs:
        raise ArchiveError(f"{db} holds no valid program yet")
    if as_json:
        rows = [p.to_json() for p in programs]
        click.echo(json.dumps({**{k: rows[0][k] for k in ("id", "score", "scores", "metrics", "split")}, "programs": rows}))
        return
    for rank, p in enumerate(programs, start=1):
        console.print(f"[bold]#{rank}[/] program {p.id} (island {p.row.island}, {p.row.proposer}): "
                      f"train {p.train_score:.6g}, {split} {p.score}")
        console.print(Syntax(p.row.function, "python", theme="ansi_dark", word_wrap=True))
    views.print_comparison(console, programs[0], baselines)


@main.command("eval")
@click.argument("spec")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--split", default="train", show_default=True, help="Inputs to evaluate on.")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path),
              help="Inputs for a spec without its own: JSON, OR-Library text, an LLM-SR CSV or directory (see docs/specs.md).")
@click.option("--timeout", type=float, help="Seconds allowed for the whole split [default: 300, or sandbox.timeout_s "
              "of --config].")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="TOML file of settings: its [sandbox] section (memory, isolation) applies.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def eval_(spec: str, file: Path, split: str, inputs_file: Path | None, timeout: float | None, config_file: Path | None,
          as_json: bool) -> None:
    """Evaluate one candidate function from FILE on SPEC's inputs, in the sandbox."""
    loaded = load_spec(spec, inputs_file)
    _print_notes(loaded)
    session.require_split(loaded, split)
    function = session.function_from_file(loaded, file)
    [result] = _evaluate(loaded, {file.name: function.source}, split, _eval_config(config_file, timeout),
                         {file.name: function.first_line} if function.first_line else None)
    _print_results([result], as_json, single=True)


@main.command()
@click.argument("spec")
@click.option("--split", default="test", show_default=True, help="Inputs to evaluate on.")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path),
              help="Inputs for a spec without its own: JSON, OR-Library text, an LLM-SR CSV or directory (see docs/specs.md).")
@click.option("--timeout", type=float, help="Seconds allowed per function for the whole split [default: 300, or "
              "sandbox.timeout_s of --config].")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="TOML file of settings: its [sandbox] section (workers, memory, isolation) applies.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def baseline(spec: str, split: str, inputs_file: Path | None, timeout: float | None, config_file: Path | None,
             as_json: bool) -> None:
    """Evaluate the spec's own function and its @evolve.baseline functions."""
    loaded = load_spec(spec, inputs_file)
    _print_notes(loaded)
    session.require_split(loaded, split)
    results = _evaluate(loaded, loaded.baseline_functions(), split, _eval_config(config_file, timeout))
    _print_results(results, as_json, single=False)


EVAL_TIMEOUT_S = 300.0  # eval and baseline run a whole split (often the test split) at once


def _eval_config(config_file: Path | None, timeout: float | None) -> RunConfig:
    """The sandbox settings of `eval`/`baseline`: --config's [sandbox], --timeout over its timeout_s."""
    config = load_config(config_file)
    if timeout is None and config_file is None:
        timeout = EVAL_TIMEOUT_S
    if timeout is not None:
        if not timeout > 0:
            raise ConfigError(f"--timeout must be positive, got {timeout}")
        config = config.replace(sandbox={"timeout_s": timeout})
    return config


def _print_notes(spec: Any) -> None:
    for note in spec.notes:  # e.g. which cells of a notebook make up the spec
        err_console.print(escape(note), highlight=False, soft_wrap=True)


def _evaluate(spec: Any, functions: dict[str, str], split: str, config: RunConfig,
              first_lines: dict[str, int] | None = None) -> list[session.Result]:
    from sandbox import SandboxPool

    limits = config.sandbox.limits
    with SandboxPool(min(len(functions), 2, config.sandbox.workers), limits, config.sandbox.isolation) as pool:
        return session.evaluate_functions(spec, functions, split, pool, limits, first_lines)


def _print_results(results: list[session.Result], as_json: bool, single: bool) -> None:
    if as_json:
        payload = results[0].to_json() if single else {"split": results[0].split, "baselines": {r.name: r.to_json() for r in results}}
        click.echo(json.dumps(payload))
    else:
        for r in results:
            ev = r.evaluation
            if not ev.ok:
                console.print(f"[bold]{r.name}[/]: [red]{ev.failure.value if ev.failure else 'failed'}[/]: {ev.error}")
                continue
            console.print(f"[bold]{r.name}[/] on {r.split}: score {ev.score:.6g} ({ev.wall_time:.2f}s)")
            for name, score in ev.scores.items():
                console.print(f"  {name}: {score:.6g}")
            views.print_metrics(console, r.metrics)
    if any(not r.evaluation.ok for r in results):
        sys.exit(1)


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--top", default=10, show_default=True, help="How many programs.")
@click.option("--adapters", "with_adapters", is_flag=True,
              help="Also copy the run's LoRA adapters to OUT_DIR/adapters/round_k (PEFT directories that "
              "`vllm serve --enable-lora` and PeftModel.from_pretrained load as they are).")
@user_errors
def export(db: Path, out_dir: Path, top: int, with_adapters: bool) -> None:
    """Write the best programs of a run as runnable .py files into OUT_DIR."""
    with runs.load(db) as run:
        written = run.export(out_dir, top)
        console.print(f"wrote {len(written)} program(s) and index.json to {out_dir}")
        if with_adapters:
            adapters = run.export_adapters(out_dir)
            console.print(f"wrote {len(adapters)} adapter(s) to {out_dir / 'adapters'}")


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--base", help="Checkpoint directory to train the adapter on [default: the run's transformers/vllm model].")
@click.option("--method", type=click.Choice(["sft", "dpo"]), help="sft: prompt -> improving program; dpo: better vs "
              "worse answers to the same prompt (needs the dpo extra) [default: the run's finetune.method, sft].")
@click.option("--out", type=click.Path(path_type=Path), help="Adapter directory to create [default: DB's "
              "<stem>-adapters/round_K].")
@user_errors
def finetune(db: Path, base: str | None, method: str | None, out: Path | None) -> None:
    """Train one LoRA round on a stopped run's best programs and record it (resume then samples from it).

    Refused while a run evolves DB: give that run --finetune-every N instead.
    """
    from finetune.rounds import finetune_now

    meta = finetune_now(db, base or "", method or "", out)
    console.print(f"round {meta['round']}: {meta['examples']} examples, {meta['steps']} steps in {meta['duration_s']:.0f}s, "
                  f"loss of the selected completions {meta['base_loss']:.4g} (base) -> {meta['adapter_loss']:.4g}; "
                  f"adapter {meta['path']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def doctor(as_json: bool) -> None:
    """Say which sandbox isolation layers this machine allows, and prove each with a probe."""
    from sandbox.doctor import diagnose

    report = diagnose()
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    console.print(f"sandbox: {report.layers.describe()}", highlight=False)
    table = Table("probe", "layer", "as it should be", "outcome")
    for probe in report.probes:
        verdict = ("allowed" if probe.allowed else "contained") if probe.contained else ("FAILS" if probe.allowed else "NOT CONTAINED")
        table.add_row(probe.name, probe.layer, f"[green]{verdict}[/]" if probe.contained else f"[red]{verdict}[/]",
                      escape(probe.outcome))
    console.print(table)
    if not report.layers.isolated:
        console.print("[red]no isolation layer is available: `evolve run` refuses unless --allow-unisolated[/]")


@main.command()
def problems() -> None:
    """List the built-in problems."""
    table = Table("name", "what")
    for name, what in BUILTINS.items():
        table.add_row(name, what)
    console.print(table)


main.add_command(models)

if __name__ == "__main__":
    main()
