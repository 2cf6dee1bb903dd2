"""The README and docs/ against the code: generated pages current, every command documented, no dead link.

What to check is computed from the code at test time (the config
dataclasses, the click group, the archive's schema), never listed here, so
a new option or field fails this file until it is documented.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from evolve import config_doc
from evolve.archive import Archive
from evolve.cli import main
from evolve.problems import BUILTINS
from evolve.archive import schema

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
README_MAX_LINES = 300


def test_configuration_page_is_generated_from_the_config_classes() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text() == config_doc.render(), (
        "docs/configuration.md is out of date; regenerate it with: "
        ".venv/bin/python -m evolve.config_doc docs/configuration.md"
    )


def test_every_config_field_has_a_row() -> None:
    """The walk itself reaches every field of every nested part (a guard on the generator)."""
    keys = {f"{t.path}.{r.key}".lstrip(".") for t in config_doc.tables() for r in t.rows}
    plain = config_doc.RunConfig().to_dict()

    def leaves(data: dict, prefix: str = "") -> Iterator[str]:
        for key, value in data.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    assert keys == set(leaves(plain))


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _documented_names(command: click.Command) -> list[str]:
    """What a reader must find for a command: each argument's name and each option's long name (--help aside)."""
    names = []
    for param in command.params:
        if isinstance(param, click.Argument):
            names.append(param.human_readable_name.upper())
        elif isinstance(param, click.Option) and "--help" not in param.opts:
            longs = [o for o in param.opts if o.startswith("--")]
            names.append((longs or param.opts)[0])
    return names


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name,command", list(_commands(main)), ids=[n for n, _ in _commands(main)])
def test_every_command_and_option_is_in_the_readme_cli_table(name: str, command: click.Command) -> None:
    rows = [line for line in README.read_text().splitlines() if re.match(rf"\| `evolve {re.escape(name)}[ `]", line)]
    assert rows, f"README.md's CLI table has no row for `evolve {name}` (a line starting with | `evolve {name}`)"
    missing = [n for n in _documented_names(command) if not any(_mentions(row, n) for row in rows)]
    assert not missing, f"README.md's CLI row for `evolve {name}` lacks {missing}"


def test_the_group_options_are_in_the_readme() -> None:
    text = README.read_text()
    missing = [n for n in _documented_names(main) if not _mentions(text, n)]
    assert not missing, f"README.md does not mention the `evolve` options {missing}"


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}); move reference to docs/"


# -- links ---------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            anchor, n = base, 0
            while anchor in out:  # repeated headings: -1, -2, ...
                n += 1
                anchor = f"{base}-{n}"
            out.add(anchor)
    return out


def _links(path: Path) -> Iterator[str]:
    for line in _prose(path.read_text()):
        for match in LINK.finditer(line):
            yield match.group(1)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_point_at_files_and_headings(page: Path) -> None:
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


# -- reference pages that follow the code ---------------------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    """Split a page at its headings: {heading text: the text up to the next heading}."""
    parts = re.split(r"^#{1,6} +(.*)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_archive_page_describes_every_table_column_and_index(tmp_path: Path) -> None:
    """Each table has a section (### `name`) that names each of its columns; every index is named."""
    Archive.create(tmp_path / "run.db", {}).close()
    conn = sqlite3.connect(tmp_path / "run.db")
    conn.execute(schema.ADAPTERS_DDL)  # the table the first LoRA round creates
    tables = {t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")]
              for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    indexes = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
    conn.close()
    text = (ROOT / "docs" / "archive.md").read_text()
    sections = _sections(text)
    missing = []
    for table, columns in sorted(tables.items()):
        section = sections.get(f"`{table}`")
        if section is None:
            missing.append(f"a section ### `{table}`")
            continue
        missing += [f"{table}.{c}" for c in columns if f"`{c}`" not in section]
    missing += [f"index {i}" for i in indexes if f"`{i}`" not in text]
    assert not missing, f"docs/archive.md lacks {missing}"


def test_problems_page_names_every_builtin_problem() -> None:
    text = (ROOT / "docs" / "problems.md").read_text()
    missing = [name for name in BUILTINS if f"`{name}`" not in text]
    assert not missing, f"docs/problems.md does not describe {missing}"
