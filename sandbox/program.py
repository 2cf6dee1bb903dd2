"""A candidate program that knows where its evolved function sits, so a worker compiles the rest once.

Every candidate of a run is the same spec code (a head before the evolved
function, a tail after it) around a different function. Compiling the whole
program costs 0.5-2 ms per candidate, nearly all of it the spec's code. A
`Program` is the program's text (a `str`, so everything that reads source
keeps working) that also holds the boundaries; the worker compiles head and
tail once per spec (`Template`), each forked child compiles only the
function, and the three run in order in one module namespace. Line numbers
are those of the whole text: the function is compiled after as many blank
lines as the head has, and the tail's code is shifted below the function.
"""

from __future__ import annotations

import __future__
import types
from collections import OrderedDict
from typing import Any

# The compiler flags that `from __future__ import ...` in the head sets; the function and tail get them too.
FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
TEMPLATES_CACHED = 8  # distinct specs whose compiled code a worker keeps


class Program(str):
    """The text of `head + function + tail`; `head`, `function` and `tail` give the pieces back."""

    _head_end: int
    _tail_start: int

    def __new__(cls, head: str, function: str, tail: str) -> Program:
        if head and not head.endswith("\n") or not function.endswith("\n"):
            raise ValueError("a program's head and function end with a newline")
        self = super().__new__(cls, head + function + tail)
        self._head_end, self._tail_start = len(head), len(head) + len(function)
        return self

    @property
    def head(self) -> str:
        return self[: self._head_end]  # a slice of a str subclass is a plain str

    @property
    def function(self) -> str:
        return self[self._head_end : self._tail_start]

    @property
    def tail(self) -> str:
        return self[self._tail_start :]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Program, (self.head, self.function, self.tail))


class Template:
    """A spec's head and tail, compiled once; `load` runs them around one function's source."""

    def __init__(self, head: str, tail: str, filename: str) -> None:
        self.filename = filename
        self.head = compile(head, filename, "exec", dont_inherit=True)
        self.flags = self.head.co_flags & FUTURE_FLAGS
        self.head_lines = head.count("\n")
        self.tail = compile(tail, filename, "exec", flags=self.flags, dont_inherit=True)

    def load(self, function: str, namespace: dict[str, Any]) -> None:
        """Compile `function` (SyntaxError: as it would be in the whole text), then run head, function, tail."""
        code = compile("\n" * self.head_lines + function, self.filename, "exec", flags=self.flags, dont_inherit=True)
        tail = _shifted(self.tail, self.head_lines + function.count("\n"))
        exec(self.head, namespace)  # noqa: S102 (in the sandboxed child)
        exec(code, namespace)  # noqa: S102
        exec(tail, namespace)  # noqa: S102


def _shifted(code: types.CodeType, lines: int) -> types.CodeType:
    """Return `code` with every line number (its nested functions' and classes' too) `lines` further down."""
    if not lines:
        return code
    consts = tuple(_shifted(c, lines) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_firstlineno=code.co_firstlineno + lines, co_consts=consts)


class Templates:
    """The worker's compiled templates, by (head, tail), the last TEMPLATES_CACHED kept."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._cache: OrderedDict[tuple[str, str], Template | None] = OrderedDict()

    def get(self, program: Program) -> tuple[Template | None, bool]:
        """Return the compiled template of `program`'s spec (None: its head or tail alone does not compile)
        and whether this is the first time the spec was seen."""
        key = (program.head, program.tail)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], False
        try:
            template: Template | None = Template(*key, self.filename)
        except (SyntaxError, ValueError):  # e.g. a function split off mid-statement: compile the whole text instead
            template = None
        self._cache[key] = template
        while len(self._cache) > TEMPLATES_CACHED:
            self._cache.popitem(last=False)
        return template, True
