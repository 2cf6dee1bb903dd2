"""Turn a proposer's raw text into one function's source, and hash it for dedupe.

    parsed = parse_candidate(model_output, prompt)
    parsed.function or parsed.reason   # "def priority(...)..." or why it was rejected

What models emit, and what happens to it:

- code fences, prose around the code: the block (fenced or not) that defines
  the requested function is kept, the prose dropped;
- several definitions: the one named `<name>_v{k}` (the version asked for),
  else `<name>`, else the last one; it is renamed to `<name>`;
- a body cut off mid-line: trimmed to the longest prefix of lines that
  parses (as FunSearch does);
- calls to itself as `<name>_v{k}` become calls to `<name>`; calls to an older
  version `<name>_v{j}` shown in the prompt, to helper functions the output
  defines, and uses of modules it imports, are kept working by nesting those
  definitions at the top of the function's body;
- SEARCH/REPLACE blocks (the diff format): applied to the best sampled
  program.

Rejection reasons (counted in the archive's stats): `empty`, `syntax`,
`no-function`, `empty-body` (nothing but a docstring is left), `diff-no-match`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evolve.prompt import rename_calls, strip_decorators
from evolve.proposers.base import Prompt
from evolve.spec import rename_function

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(", re.M)
_DIFF = re.compile(r"^<{5,}[ \t]*SEARCH[ \t]*\n(.*?)^={5,}[ \t]*\n(.*?)^>{5,}[ \t]*REPLACE", re.S | re.M)
DIFF_MARKER = re.compile(r"^<{5,}[ \t]*SEARCH", re.M)
REASONS = ("empty", "syntax", "no-function", "empty-body", "diff-no-match")


@dataclass(frozen=True)
class Parsed:
    """A candidate function, or the reason it was rejected."""

    function: str | None  # source of one `def <name>(...)`, renamed to the requested name
    reason: str = ""  # why it was rejected: one of REASONS


def parse_candidate(text: str, prompt: Prompt) -> Parsed:
    """Parse a proposer's answer to `prompt` (whole function, completion or diff)."""
    if DIFF_MARKER.search(text) and prompt.functions:
        return apply_diff(text, prompt.functions[-1], prompt.function_name)
    return extract_function(text, prompt.function_name, prompt.functions)


def extract_function(text: str, name: str, versions: Sequence[str] = ()) -> Parsed:
    """Return the function `name` from proposer output, else the last function defined.

    `versions` are the prompt's parents, worst first: the answer is expected
    to be `<name>_v{len(versions)}`, and may call the older `<name>_v{j}`.
    """
    if not text.strip():
        return Parsed(None, "empty")
    wanted = [f"{name}_v{len(versions)}", name] if versions else [name]
    code = _code_block(text, wanted)
    defs = _top_level_defs(code)
    if not defs:
        return Parsed(None, "no-function")
    by_name = {d.name: d for d in defs}
    chosen = next((by_name[w] for w in wanted if w in by_name), defs[-1])
    source = _segment(code, chosen)
    try:
        fn = _parse(source).body[0]
    except SyntaxError:
        return Parsed(None, "syntax")
    if all(_is_docstring(s) or isinstance(s, ast.Pass) for s in fn.body):  # type: ignore[attr-defined]
        return Parsed(None, "empty-body")  # e.g. a header whose body was cut off before its first line
    # Renaming swaps one name token for another: the source still parses.
    if chosen.name != name:
        source = rename_function(source, chosen.name, name)
    if versions:
        source = rename_calls(source, f"{name}_v{len(versions)}", name)  # recursion under its new name
    nested = _with_helpers(source, code, defs, chosen, name, versions)
    if nested != source:
        try:
            _parse(nested)
        except SyntaxError:
            return Parsed(None, "syntax")
    return Parsed(nested)


def function_names(text: str) -> list[str]:
    """Return the names of the outermost functions defined in proposer-style text (prose and fences allowed)."""
    return [d.name for d in _top_level_defs(text)]


def _parse(source: str) -> ast.Module:
    """ast.parse, quietly: a model's text may hold invalid escapes, whose warnings would fill the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def apply_diff(text: str, base: str, name: str) -> Parsed:
    """Apply SEARCH/REPLACE blocks to `base` (a function's source) and return the result."""
    blocks = _DIFF.findall(text)
    if not blocks:
        return Parsed(None, "syntax")  # markers without a whole block: cut off
    source = strip_decorators(base)
    for search, replace in blocks:
        patched = _replace_once(source, search, replace)
        if patched is None:
            return Parsed(None, "diff-no-match")
        source = patched
    return extract_function(source, name)


def _replace_once(source: str, search: str, replace: str) -> str | None:
    """Replace `search` by `replace` once: exactly, else line by line ignoring indentation."""
    if search.strip() and search in source:
        return source.replace(search, replace, 1)
    want = [s.strip() for s in search.splitlines() if s.strip()]
    if not want:
        return None
    lines = source.splitlines()
    for i in range(len(lines)):
        got = [ln for ln in lines[i:] if ln.strip()][: len(want)]
        if [g.strip() for g in got] != want:
            continue
        j = i  # last line index of the match, counting the blank lines in between
        seen = 0
        while seen < len(want):
            seen += bool(lines[j].strip())
            j += 1
        shift = _indent(lines[i]) - _indent(next(s for s in search.splitlines() if s.strip()))
        new = [(" " * shift + s if shift > 0 else s[min(-shift, _indent(s)) :]) if s.strip() else s for s in replace.splitlines()]
        return "\n".join(lines[:i] + new + lines[j:]) + "\n"
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _code_block(text: str, wanted: Sequence[str]) -> str:
    """Pick the fenced block that defines a wanted name, else the last one with a def, else all the text."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    for w in wanted:
        hit = [b for b in blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(w)}\s*\(", b, re.M)]
        if hit:
            return hit[-1]
    with_def = [b for b in blocks if _has_def_line(b)]
    return (with_def or blocks)[-1]


def _has_def_line(code: str) -> bool:
    return _DEF.search(code) is not None


@dataclass(frozen=True)
class _Def:
    name: str
    start: int  # index of its `def` line in the code


def _top_level_defs(code: str) -> list[_Def]:
    """Find the outermost function definitions, each trimmed to the longest prefix that parses."""
    hits = [(m.group(1), m.group(2), code.count("\n", 0, m.start())) for m in _DEF.finditer(code)]
    if not hits:
        return []
    outer = min(len(indent.expandtabs()) for indent, _, _ in hits)
    defs = []
    for indent, def_name, line in hits:
        if len(indent.expandtabs()) != outer:
            continue
        defs.append(_Def(def_name, line))  # decorators are dropped: the spec calls the bare function
    return defs


def _segment(code: str, d: _Def) -> str:
    """Return one definition's source: from its first line, the longest prefix that parses."""
    lines = _dedent_block(code.splitlines()[d.start :])
    # The next definition at this level bounds the search (keeps trimming linear).
    stop = next((i for i in range(1, len(lines)) if _DEF.match(lines[i]) and not lines[i][:1].isspace()), len(lines))
    for end in range(stop, 0, -1):
        chunk = "\n".join(lines[:end])
        try:
            tree = _parse(chunk)
        except SyntaxError:
            continue
        fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if fn is not None and fn.end_lineno is not None:
            return "\n".join(lines[: fn.end_lineno]) + "\n"
    return "\n".join(lines[:stop]) + "\n"  # does not parse: rejected by the caller


def _dedent_block(lines: list[str]) -> list[str]:
    """Remove the first line's indentation; a later line indented less ends the block."""
    indent = lines[0][: _indent(lines[0])]
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line.startswith(indent):
            out.append(line[len(indent) :])
        else:
            break
    return out


def _with_helpers(source: str, code: str, defs: Sequence[_Def], chosen: _Def, name: str, versions: Sequence[str]) -> str:
    """Nest the older versions, helpers and imports the function uses at the top of its body."""
    # name -> how to write its definition (built only when the function uses the name)
    available: dict[str, Callable[[], str]] = {}
    for j, version in enumerate(versions):
        available[f"{name}_v{j}"] = functools.partial(_renamed, version, name, f"{name}_v{j}")
    for d in defs:
        if d is not chosen and d.name not in (name, f"{name}_v{len(versions)}"):
            available[d.name] = functools.partial(_segment, code, d)
    if "import" in code:
        available.update({k: functools.partial(str, v) for k, v in _imports(code).items()})
    if not any(n in source for n in available):  # the common case, decided without parsing
        return source
    try:
        fn = _parse(source).body[0]
    except SyntaxError:
        return source
    needed: dict[str, str] = {}
    frontier = [source]
    while frontier:
        for n in sorted(_loaded_names(frontier.pop()) & available.keys()):
            if n not in needed and not _binds(fn, n):
                needed[n] = available[n]()
                frontier.append(needed[n])
    if not needed:
        return source
    assert isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
    lines = source.splitlines()
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    if first.lineno == fn.lineno:  # a one-line function: nothing to nest into
        return source
    at = (first.end_lineno or first.lineno) if has_doc else first.lineno - 1
    body_line = lines[first.lineno - 1]
    pad = body_line[: len(body_line) - len(body_line.lstrip())]
    nested = [textwrap.indent(needed[n].rstrip("\n"), pad) for n in reversed(needed)]
    return "\n".join(lines[:at] + nested + lines[at:]) + "\n"


def _renamed(version: str, name: str, new: str) -> str:
    return rename_calls(strip_decorators(version), name, new)


def _imports(code: str) -> dict[str, str]:
    """Return {bound name: import line} for the top-level imports in the output."""
    out: dict[str, str] = {}
    for line in textwrap.dedent(code).splitlines():
        if not line.startswith(("import ", "from ")):
            continue
        try:
            node = _parse(line).body[0]
        except SyntaxError:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                out[(alias.asname or alias.name).split(".")[0]] = line.strip()
    return out


def _loaded_names(source: str) -> set[str]:
    try:
        tree = _parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _binds(fn: ast.AST, name: str) -> bool:
    """Tell whether the function defines `name` itself (argument, assignment, nested def)."""
    for n in ast.walk(fn):
        if isinstance(n, ast.arg) and n.arg == name:
            return True
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == name:
            return True
        if n is not fn and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name:
            return True
    return False


def normalize(function_source: str) -> str:
    """Return a canonical form: no comments, no docstring, no annotations, fixed name.

    Two candidates with the same canonical form behave identically, so the
    second is not evaluated.
    """
    tree = _parse(textwrap.dedent(function_source))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    fn.name = "f"
    fn.decorator_list = []
    fn.returns = None
    for arg in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg, fn.args.kwarg]:
        if arg is not None:
            arg.annotation = None
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        fn.body = body[1:] or [ast.Pass()]
    return ast.unparse(fn)


def program_hash(function_source: str) -> str:
    """Return the dedupe key of a function: sha256 of its canonical form (hex, 32 chars)."""
    return hashlib.sha256(normalize(function_source).encode()).hexdigest()[:32]
