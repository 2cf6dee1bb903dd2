"""Read a problem spec out of a Jupyter notebook, as FunSearch publishes its specs.

    nb = notebook_spec(Path("bin_packing.ipynb"))
    nb.source        # Python: the cells that make up the spec, in order
    nb.note          # "bin_packing.ipynb: the spec is cells 3 (imports only), 5; ..."
    cell_of(nb.source, 42)   # "cell 5, line 12": a line of `source` as the notebook shows it

The spec cells are the code cells holding the role decorators (real or
commented out, `# @funsearch.run`). A notebook's first cells usually import
numpy and build data, its later cells try heuristics (and redefine the evolved
function); so from the cells before the spec only what the spec uses is taken:
their imports, and a whole cell when it defines a name the spec uses. Cells
after the spec are never run. A spec that uses a name defined only after it is
refused, naming the cells to move.

Cells are numbered from 1 over all cells, markdown included, top to bottom.
The assembled source opens each cell with a header comment; `cell_of` reads
those back, so an archive that stored the source still names cells.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_MAGIC = re.compile(r"^\s*[%!]")  # IPython magics and shell escapes: not Python
_HEADER = re.compile(r"^# --- .*, cell (\d+)( \(its imports\))? ---$")


class NotebookError(ValueError):
    """A notebook that cannot be read as a spec: what is wrong, and what to do."""

    def __init__(self, message: str, fix: str = "") -> None:
        self.message, self.fix = message, fix
        super().__init__(message)


@dataclass(frozen=True)
class _Cell:
    number: int  # 1-based over all cells
    source: str
    tree: ast.Module


@dataclass(frozen=True)
class NotebookSpec:
    """The spec assembled from a notebook's cells."""

    source: str
    note: str  # which cells were taken, for the command to print


def cell_of(source: str, line: int) -> str | None:
    """Say where line `line` (1-based) of an assembled notebook spec is: "cell 5, line 12"; None if not known."""
    lines = source.splitlines()
    for i in range(min(line, len(lines)) - 1, -1, -1):
        m = _HEADER.match(lines[i])
        if m:
            return f"cell {m.group(1)}'s imports" if m.group(2) else f"cell {m.group(1)}, line {line - i - 1}"
    return None


def notebook_spec(path: Path, is_marked: Callable[[ast.Module, list[str]], bool]) -> NotebookSpec:
    """Assemble the spec of notebook `path`; `is_marked(tree, lines)` tells a cell that holds role decorators."""
    cells = _code_cells(path)
    marked = [c for c in cells if is_marked(c.tree, c.source.splitlines())]
    if not marked:
        raise NotebookError("no code cell holds an @evolve.run / @evolve.evolve function (or FunSearch's "
                            "commented-out # @funsearch.run, # @funsearch.evolve)",
                            "mark the entry point and the function to evolve in one code cell")
    first, last = marked[0].number, marked[-1].number
    spec_cells = [c for c in cells if first <= c.number <= last]
    earlier = [c for c in cells if c.number < first]
    later = [c for c in cells if c.number > last]
    free = set().union(*(_free_names(c.tree) for c in spec_cells)) - set().union(*(_bound(c.tree) for c in spec_cells))
    parts: list[tuple[_Cell, str, bool]] = []  # (cell, text, whole)
    for cell in earlier:
        defines = _bound(cell.tree, imports=False) & free
        if defines:
            parts.append((cell, cell.source, True))
            continue
        imports = [n for n in cell.tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if imports:
            lines = cell.source.splitlines()
            parts.append((cell, "\n".join("\n".join(lines[n.lineno - 1 : n.end_lineno]) for n in imports), False))
    parts += [(c, c.source, True) for c in spec_cells]
    resolved = set().union(*(_bound(c.tree) for c, _, whole in parts if whole),
                           *(_bound(ast.parse(text)) for _, text, whole in parts if not whole))
    missing: dict[str, int] = {}
    for cell in later:
        for name in sorted((_bound(cell.tree) & free) - resolved):
            missing.setdefault(name, cell.number)
    if missing:
        names = ", ".join(f"`{n}` (cell {k})" for n, k in missing.items())
        cells_to_move = sorted(set(missing.values()))
        raise NotebookError(
            f"the spec in cell{'s' if first != last else ''} {_span(first, last)} uses {names}, defined only after it",
            f"move cell {', '.join(map(str, cells_to_move))} above the spec, or extract the spec's cells into a .py file")
    return _assemble(path, parts, later)


def _assemble(path: Path, parts: list[tuple[_Cell, str, bool]], later: list[_Cell]) -> NotebookSpec:
    out: list[str] = []
    for cell, text, whole in parts:
        out.append(f"# --- {path.name}, cell {cell.number}{'' if whole else ' (its imports)'} ---")
        out.extend(text.splitlines())
        out.append("")
    taken = ", ".join(f"{c.number}" + ("" if whole else " (imports only)") for c, _, whole in parts)
    note = f"{path.name}: the spec is cell{'s' if len(parts) > 1 else ''} {taken}"
    if later:
        after = "cells " + ", ".join(str(c.number) for c in later) + " come" if len(later) > 1 else f"cell {later[0].number} comes"
        note += f"; {after} after it, not run"
    return NotebookSpec("\n".join(out) + "\n", note)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _code_cells(path: Path) -> list[_Cell]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read the notebook: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not a notebook: invalid JSON at line {exc.lineno}: {exc.msg}",
                            "pass the .ipynb as Jupyter saved it") from exc
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise NotebookError("not a notebook: no list of cells (nbformat 4 is read)", "pass the .ipynb as Jupyter saved it")
    out = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        raw = cell.get("source", "")
        text = "".join(raw) if isinstance(raw, list) else str(raw)
        # A magic line is kept as a comment, so the cell's line numbers stay those the notebook shows.
        text = "\n".join("# " + ln if _MAGIC.match(ln) else ln for ln in text.splitlines())
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            raise NotebookError(f"cell {number}, line {exc.lineno}: syntax error: {exc.msg}", "fix the cell's Python") from exc
        out.append(_Cell(number, text, tree))
    return out


def _bound(tree: ast.Module, imports: bool = True) -> set[str]:
    """Names a cell binds at its top level (functions, classes, assignments; imports unless told not)."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if imports:
                out.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            out.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return out


def _free_names(tree: ast.Module) -> set[str]:
    """Names a cell reads that nothing inside it binds (a rough cut: enough to find what it needs from elsewhere)."""
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    local |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    local |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return loaded - local - set(dir(builtins))
