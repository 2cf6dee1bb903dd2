"""Render docs/configuration.md from the config dataclasses and the comments written next to their fields.

    .venv/bin/python -m evolve.config_doc docs/configuration.md     # rewrite the page (no path: print it)

The page is never edited by hand: tests/test_docs.py checks that it equals
this module's output. Each table of a run's TOML file is one dataclass
nested in `RunConfig`; each row is one field with its type, its default
and its comment. A field's comment is the `#` comment at the end of its
line, else the block of `#` lines right above it. A block comment also
serves the uncommented fields that follow it with no blank line between
(a group such as the GP mutation weights); they point back to the first.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import sys
import textwrap
import tokenize
import tomllib
import types
import typing
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evolve.config import RunConfig

# A small config file, checked against RunConfig each time the page is rendered (a renamed key fails here).
EXAMPLE = """\
proposer = "gp"
[loop]
budget = 20000
seed = 1
[islands]
num_islands = 10
[sandbox]
workers = 2
timeout_s = 30.0
[sandbox.isolation]
allow_unisolated = false
"""

INTRO = """\
# Configuration

`evolve run SPEC --config FILE.toml` reads one TOML table per part of the
run. Flags given on the command line (`--budget`, `--seed`, `--workers`,
`--proposer`, `--model`, ...; see the CLI table in the
[README](../README.md#cli)) override the file. The whole configuration is
stored in the archive, and `evolve resume` reuses it. A key left out keeps
its default; an unknown key or a value of the wrong type stops the run
with a one-line error that names it. TOML has no null: a default shown as
*unset* means "leave the key out". A default written as an expression is
computed when the run starts.

```toml
{example}```

This page is generated from the config dataclasses and the comment next to
each field. Do not edit it: change the comment in the source, then run
`.venv/bin/python -m evolve.config_doc docs/configuration.md`.
"""


@dataclass(frozen=True)
class Row:
    """One documented field."""

    key: str
    type: str
    default: str
    comment: str


@dataclass(frozen=True)
class Table:
    """One TOML table: a config dataclass at a dotted path ("" for the top level)."""

    path: str
    cls: type
    rows: tuple[Row, ...]


def tables(root: type = RunConfig, path: str = "", plain: Mapping[str, Any] | None = None) -> list[Table]:
    """Walk `root` and its nested dataclasses, depth first, each table before its sub-tables.

    What is a table and what is a value follows `RunConfig().to_dict()`, the
    plain data a TOML file holds: a dataclass written as text there (the
    proposer mix) is one string key, with that text as its default.
    """
    plain = RunConfig().to_dict() if plain is None else plain
    hints = typing.get_type_hints(root)
    comments, factories, annotations = field_comments(root), _factory_sources(root), _annotation_sources(root)
    rows, nested = [], []
    for f in dataclasses.fields(root):
        value = plain[f.name]
        if isinstance(value, Mapping) and dataclasses.is_dataclass(hints[f.name]):
            nested.append((f.name, hints[f.name], value))
        elif dataclasses.is_dataclass(hints[f.name]):  # held as text in the file
            rows.append(Row(f.name, type(value).__name__, _toml(value), comments.get(f.name, "")))
        else:
            rows.append(Row(f.name, _type_text(hints[f.name], annotations[f.name]), _default_text(f, factories),
                            comments.get(f.name, "")))
    out = [Table(path, root, tuple(rows))]
    for name, cls, value in nested:
        out.extend(tables(cls, f"{path}.{name}" if path else name, value))
    return out


def field_comments(cls: type) -> dict[str, str]:
    """Return {field: comment} from the class's source (trailing comment, else the block right above)."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    trailing: dict[int, str] = {}  # line number (1-based) -> comment after code on that line
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and lines[token.start[0] - 1][: token.start[1]].strip():
            trailing[token.start[0]] = _clean(token.string)
    [node] = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    out: dict[str, str] = {}
    group: tuple[str, int] | None = None  # (field whose block comment serves the next ones, its last line)
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            group = None
            continue
        name = stmt.target.id
        after = next((trailing[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in trailing), "")
        above = _block_above(lines, stmt.lineno)
        if after:
            out[name], group = after, None
        elif above:
            out[name], group = above, (name, stmt.end_lineno or stmt.lineno)
        elif group is not None and stmt.lineno == group[1] + 1:  # the next line of an uncommented run
            out[name], group = f"See `{group[0]}`.", (group[0], stmt.end_lineno or stmt.lineno)
        else:
            group = None
    return out


def render() -> str:
    """Return the whole page."""
    RunConfig.from_dict(tomllib.loads(EXAMPLE))  # the example must stay a valid config
    parts = [INTRO.format(example=EXAMPLE)]
    for table in tables():
        heading = f"`[{table.path}]`" if table.path else "Top level (no table)"
        doc = inspect.getdoc(table.cls) or ""
        parts.append(f"## {heading}\n\n{_paragraphs(doc)}`{table.cls.__module__}.{table.cls.__qualname__}`\n")
        if table.rows:
            body = "\n".join(f"| `{r.key}` | {_code(r.type)} | {_code(r.default)} | {_cell(r.comment)} |" for r in table.rows)
            parts.append("| key | type | default | what it sets |\n| --- | --- | --- | --- |\n" + body + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)


# -- rendering one field ---------------------------------------------------------------------------


def _clean(comment: str) -> str:
    return comment.lstrip("#").strip()


def _block_above(lines: list[str], lineno: int) -> str:
    """Join the `#` lines directly above line `lineno` (1-based), with no blank line between."""
    block: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        block.insert(0, _clean(lines[i].strip()))
        i -= 1
    return " ".join(block)


def _annotation_sources(cls: type) -> dict[str, str]:
    [node] = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    assert isinstance(node, ast.ClassDef)
    return {s.target.id: ast.unparse(s.annotation) for s in node.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def _factory_sources(cls: type) -> dict[str, str]:
    """Return {field: source of the expression its default_factory computes} for lambda factories."""
    [node] = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    assert isinstance(node, ast.ClassDef)
    out = {}
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(stmt.value, ast.Call):
            for kw in stmt.value.keywords:
                if kw.arg == "default_factory" and isinstance(kw.value, ast.Lambda):
                    out[stmt.target.id] = ast.unparse(kw.value.body)
    return out


def _type_text(hint: Any, source: str) -> str:
    """The annotation as written, except that a Literal alias shows its values."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not any(typing.get_origin(o) is typing.Literal for o in options):
        return source
    shown: list[str] = []
    for option in options:
        if typing.get_origin(option) is typing.Literal:
            shown.extend(json.dumps(v) for v in typing.get_args(option))
        else:
            shown.append("None" if option is type(None) else getattr(option, "__name__", str(option)))
    return " | ".join(shown)


def _default_text(f: dataclasses.Field[Any], factories: dict[str, str]) -> str:
    if f.name in factories:  # computed at start (e.g. the CPU count): show the expression, not this machine's value
        return factories[f.name]
    if f.default is not dataclasses.MISSING:
        return _toml(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _toml(f.default_factory())
    return "(required)"


def _toml(value: Any) -> str:
    """Write a default as it would appear in a TOML file."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _paragraphs(doc: str) -> str:
    """A docstring as markdown paragraphs, each ending in a blank line (nothing for no docstring)."""
    if not doc:
        return ""
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    return "".join(p + "\n\n" for p in paragraphs)


def _code(text: str) -> str:
    """A code span in a table cell: fenced with one backtick more than the text's longest run of them."""
    if text == "unset":
        return text
    longest = run = 0
    for ch in text:  # the longest run of consecutive backticks
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    main()
