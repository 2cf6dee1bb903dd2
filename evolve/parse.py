"""Turn a proposer's raw text into one function's source, and hash it for dedupe."""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
from dataclasses import dataclass

from evolve.spec import rename_function

_FENCE = re.compile(r"```[a-zA-Z]*\n(.*?)(?:```|$)", re.S)


@dataclass(frozen=True)
class Parsed:
    """A candidate function, or the reason it was rejected."""

    function: str | None  # source of one `def <name>(...)`, renamed to the requested name
    reason: str = ""  # why it was rejected: "syntax", "no-function"


def extract_function(text: str, name: str) -> Parsed:
    """Return the function `name` from proposer output, else the last function defined.

    Code fences are unwrapped; a body cut off mid-way is trimmed to the
    longest prefix of lines that parses (as FunSearch does).
    """
    fenced = _FENCE.findall(text)
    code = textwrap.dedent(fenced[-1] if fenced else text).strip("\n")
    tree = _parse_longest_prefix(code)
    if tree is None:
        try:
            ast.parse(code)
        except SyntaxError:
            return Parsed(None, "syntax")
        return Parsed(None, "no-function")
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not defs:
        return Parsed(None, "no-function")
    chosen = next((d for d in defs if d.name == name), defs[-1])
    lines = code.splitlines()
    start = min([chosen.lineno, *(d.lineno for d in chosen.decorator_list)])
    source = "\n".join(lines[start - 1 : chosen.end_lineno]) + "\n"
    if chosen.name != name:
        source = rename_function(source, chosen.name, name)
    return Parsed(source)


def _parse_longest_prefix(code: str) -> ast.Module | None:
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        try:
            tree = ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
        if any(isinstance(n, ast.FunctionDef) for n in tree.body):
            return tree
    return None


def normalize(function_source: str) -> str:
    """Return a canonical form: no comments, no docstring, no annotations, fixed name.

    Two candidates with the same canonical form behave identically, so the
    second is not evaluated.
    """
    tree = ast.parse(textwrap.dedent(function_source))
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
