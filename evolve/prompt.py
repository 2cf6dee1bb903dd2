"""Render a prompt for a language model: FunSearch's completion format, chat, and diff.

    prompt = build_prompt(island, parent_ids, functions, scores, "priority", preface)
    render(prompt, "completion").text  # the completion (base-model) format
    render(prompt, "chat").messages  # the same content for an instruct model

Completion format (FunSearch): the spec's preface, then the k sampled
programs renamed `<name>_v0 … <name>_v{k-1}` worst first (from `_v1` on, the
docstring says "Improved version of `<name>_v{i-1}`."), then the header of
`<name>_v{k}` whose docstring says "Improved version of `<name>_v{k-1}`". The
model writes the body of `_v{k}`. (FunSearch's reference code names the new
function after the count of parents but words its docstring as if it
followed the last one; here the numbers agree: v{k} improves v{k-1}.)

Diff format: the preface and the best sampled program under its own name;
the model answers with SEARCH/REPLACE blocks against it (see
`evolve.parse.apply_diff`).
"""

from __future__ import annotations

import ast
import functools
import io
import textwrap
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from evolve.proposers.base import Prompt
from evolve.spec import Spec

PromptFormat = Literal["completion", "chat", "diff"]
FORMATS: tuple[PromptFormat, ...] = ("completion", "chat", "diff")
Message = dict[str, str]  # {"role": ..., "content": ...}, as the OpenAI chat API takes it

SYSTEM = (
    "You are an expert Python programmer improving a heuristic in an evolutionary search. "
    "Each new version should score higher than the ones before it."
)
DIFF_RULES = """Answer with one or more SEARCH/REPLACE blocks against `{name}` above, each like:

<<<<<<< SEARCH
lines copied exactly from `{name}`
=======
the lines that replace them
>>>>>>> REPLACE

Change the logic, not only the comments. Nothing else is needed."""


@dataclass(frozen=True)
class Rendered:
    """A prompt ready for a model: `text` for a completion model, `messages` for chat.

    `prefix` goes in front of what a completion model writes (the header of
    `<name>_v{k}`), so that the candidate is a whole function.
    """

    text: str = ""
    messages: tuple[Message, ...] = ()
    prefix: str = ""


def spec_preface(spec: Spec) -> str:
    """Return the spec as written above the evolved function, minus what only GP reads.

    Marker decorators stay (they tell the model which function is evaluated);
    the `GP_PRIMITIVES` table is left out.
    """
    lines = spec.source.splitlines()
    start = spec.function_span[0] - 1  # index of the `def` line
    while start > 0 and lines[start - 1].lstrip().startswith(("@", "# @", "#@")):
        start -= 1  # the evolved function's own decorators
    keep = list(lines[:start])
    try:
        tree = ast.parse("\n".join(keep))
    except SyntaxError:  # a decorator block cut oddly: keep the text as it is
        return "\n".join(keep).rstrip() + "\n"
    for node in reversed(tree.body):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "GP_PRIMITIVES" for t in node.targets):
            first = node.lineno - 1
            while first > 0 and keep[first - 1].lstrip().startswith("#"):
                first -= 1  # its comment
            del keep[first : node.end_lineno]
    return "\n".join(keep).rstrip() + "\n"


def build_prompt(
    island: int, parent_ids: Sequence[int], functions: Sequence[str], scores: Sequence[float],
    name: str, preface: str,
) -> Prompt:
    """Return a Prompt; `render` writes its text when a proposer needs it (GP does not)."""
    return Prompt(island, tuple(parent_ids), tuple(functions), tuple(scores), name, preface=preface)


def render(prompt: Prompt, fmt: PromptFormat) -> Rendered:
    """Render a prompt in one of the three formats."""
    if fmt == "completion":
        text = completion_text(prompt.preface, prompt.functions, prompt.function_name)
        return Rendered(text=text, prefix=header(prompt.functions[-1], prompt.function_name, len(prompt.functions)))
    if fmt == "chat":
        return Rendered(messages=chat_messages(prompt))
    if fmt == "diff":
        return Rendered(messages=diff_messages(prompt))
    raise ValueError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")


def completion_text(preface: str, functions: Sequence[str], name: str) -> str:
    """Return FunSearch's base-model prompt for parents given worst first."""
    k = len(functions)
    parts = [versioned(f, name, i) for i, f in enumerate(functions)]
    parts.append(header(functions[-1], name, k))
    return preface.rstrip() + "\n\n\n" + "\n\n".join(parts)


def chat_messages(prompt: Prompt) -> tuple[Message, ...]:
    """Return the completion format's content as a system and a user message."""
    name, k = prompt.function_name, len(prompt.functions)
    versions = "\n\n".join(versioned(f, name, i) for i, f in enumerate(prompt.functions))
    user = (
        f"Here is a Python program:\n\n```python\n{prompt.preface.rstrip()}\n\n\n{versions}\n```\n\n"
        f"The versions of `{name}` are listed from worst to best. Write `{name}_v{k}`, an improved version "
        f"of `{name}_v{k - 1}` with the same signature. Reply with one ```python code block that defines "
        f"`{name}_v{k}` and nothing else."
    )
    return ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user})


def diff_messages(prompt: Prompt) -> tuple[Message, ...]:
    """Return the preface and the best sampled program, asking for SEARCH/REPLACE blocks."""
    name, best = prompt.function_name, strip_decorators(prompt.functions[-1])
    user = (
        f"Here is a Python program:\n\n```python\n{prompt.preface.rstrip()}\n\n\n{best}```\n\n"
        f"Improve `{name}` so that the program scores higher. " + DIFF_RULES.format(name=name)
    )
    return ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user})


@functools.lru_cache(maxsize=4096)  # the islands offer the same good programs again and again
def versioned(function: str, name: str, version: int) -> str:
    """Rename a parent to `<name>_v{version}` (calls to itself too); from v1 on, replace its docstring."""
    source = rename_calls(strip_decorators(function), name, f"{name}_v{version}")
    if version == 0:
        return source
    return set_docstring(source, f"Improved version of `{name}_v{version - 1}`.")


@functools.lru_cache(maxsize=4096)
def header(function: str, name: str, version: int) -> str:
    """Return the signature of `function` as `<name>_v{version}`, with its docstring and no body."""
    source = rename_calls(strip_decorators(function), name, f"{name}_v{version}")
    fn = _function_node(source)
    lines = source.splitlines()
    body_line = fn.body[0].lineno  # 1-based; the signature ends on the line above it
    signature = "\n".join(lines[fn.lineno - 1 : body_line - 1]) if body_line > fn.lineno else _one_line_signature(fn)
    indent = _body_indent(lines, fn)
    return f'{signature}\n{indent}"""Improved version of `{name}_v{version - 1}`."""\n'


def strip_decorators(function: str) -> str:
    """Return a function's source from its `def` line on, dedented, ending in one newline."""
    source = textwrap.dedent(function)
    fn = _function_node(source)
    return "\n".join(source.splitlines()[fn.lineno - 1 :]).rstrip() + "\n"


def rename_calls(source: str, old: str, new: str) -> str:
    """Replace the name `old` by `new` wherever it is a name token (the def and every call)."""
    if old not in source:
        return source
    tokens = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME and tok.string == old:
                tok = tok._replace(string=new)
            tokens.append(tok)
    except (tokenize.TokenError, SyntaxError):  # not Python: leave it as it is
        return source
    return _untokenize(tokens, source)


def set_docstring(source: str, doc: str) -> str:
    """Replace (or insert) the docstring of the one function in `source`."""
    fn = _function_node(source)
    lines = source.splitlines()
    indent = _body_indent(lines, fn)
    first = fn.body[0]
    new = f'{indent}"""{doc}"""'
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        if first.lineno == fn.lineno:  # `def f(): "doc"; ...` on one line: leave it
            return source
        lines[first.lineno - 1 : first.end_lineno] = [new]
    elif first.lineno > fn.lineno:
        lines.insert(first.lineno - 1, new)
    return "\n".join(lines) + "\n"


def _function_node(source: str) -> ast.FunctionDef:
    tree = ast.parse(source)
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if fn is None:
        raise ValueError("no function definition in the source")
    return fn  # type: ignore[return-value]


def _body_indent(lines: list[str], fn: ast.FunctionDef) -> str:
    line = lines[fn.body[0].lineno - 1]
    if fn.body[0].lineno == fn.lineno:
        return "    "
    return line[: len(line) - len(line.lstrip())]


def _one_line_signature(fn: ast.FunctionDef) -> str:
    stub = ast.FunctionDef(name=fn.name, args=fn.args, body=[ast.Pass()], decorator_list=[], returns=fn.returns)
    return ast.unparse(ast.fix_missing_locations(stub)).splitlines()[0]


def _untokenize(tokens: list[tokenize.TokenInfo], source: str) -> str:
    """Rebuild the text from tokens whose strings changed, keeping every other character."""
    lines = source.splitlines(keepends=True)
    out = list(lines)
    # Apply replacements right to left per line so that columns stay valid.
    for tok in sorted(tokens, key=lambda t: t.start, reverse=True):
        (row, col), (end_row, end_col) = tok.start, tok.end
        if tok.type != tokenize.NAME or row != end_row or row > len(out):
            continue
        line = out[row - 1]
        if line[col:end_col] != tok.string:
            out[row - 1] = line[:col] + tok.string + line[end_col:]
    return "".join(out)
