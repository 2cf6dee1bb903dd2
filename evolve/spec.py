"""Load a problem spec: one Python file with an entry point and a function to evolve.

A spec marks its functions with decorators whose attribute names give their
roles; the module before the dot is free, so FunSearch's (`@funsearch.run`,
`@funsearch.evolve`) and LLM-SR's (`@evaluate.run`, `@equation.evolve`) files
load unchanged, also when the decorators are commented out::

    @evolve.run        # entry: takes one input, returns a number (higher is better)
    @evolve.evolve     # the function evolution rewrites; its body is the seed
    @evolve.inputs     # optional loader: split name -> {input name: value}
    @evolve.baseline   # optional alternatives to the evolved function
    @evolve.metrics    # optional, trusted: (split, inputs, scores) -> figures to report
    @evolve.check      # optional, trusted: (input, raw output) -> the score to believe

Inputs come from a module-level `INPUTS` mapping (either `{split: {name:
value}}` or a flat `{name: value}` taken as the `train` split), an
`@evolve.inputs` loader, or a JSON file passed with `--inputs`.

A result from the sandbox is the candidate's claim. When the entry returns
`{"score": s, "output": o}` (o plain data: lists, numbers, strings), the
spec's `@evolve.check` function recomputes the score from the input and the
raw output, outside the candidate's process, and only that score is
believed; a claim that disagrees with it is a `forbidden` failure.

The spec is the user's own code: it runs in the loop's process to load
inputs, compute metrics and check outputs. Candidates never do: a candidate is the spec's
source with the evolved function replaced, and only the sandbox runs it.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evolve.problems import BUILTINS, builtin_path
from sandbox import Evaluation, FailureKind

log = logging.getLogger(__name__)

ROLES = ("run", "evolve", "inputs", "baseline", "metrics", "check")
# Modules whose decorators mark roles and whose imports the loader removes.
MARKER_MODULES = frozenset({"evolve", "funsearch", "evaluate", "equation"})
_COMMENTED_DECORATOR = re.compile(r"^\s*#\s*@\s*(\w+)\.(\w+)\s*(\(\s*\))?\s*$")
SPLITS = ("train", "test")


class SpecError(Exception):
    """A spec file that cannot be used, with where and how to fix it."""

    def __init__(self, path: str | Path, line: int | None, message: str, fix: str = "") -> None:
        self.path, self.line, self.message, self.fix = str(path), line, message, fix
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}" + (f"; {fix}" if fix else ""))


@dataclass(frozen=True)
class _Marked:
    role: str
    name: str
    line: int  # the `def` line (1-based)
    end: int  # last line of the function
    decorator_lines: tuple[int, ...]  # real (uncommented) marker decorators


@dataclass(frozen=True)
class Spec:
    """A loaded problem spec."""

    name: str  # built-in name or the file's stem
    path: Path
    source: str  # the file as written
    program_source: str  # runnable: marker decorators and imports commented out
    entry: str  # the @run function
    entry_line: int
    function_name: str  # the @evolve function
    function: str  # its source in the file: the seed
    function_span: tuple[int, int]  # its lines in program_source, 1-based inclusive
    baselines: tuple[str, ...]  # names of @baseline functions
    gp_primitives: Mapping[str, Any] | None  # the spec's GP_PRIMITIVES, if any
    builtin: bool
    _module: types.ModuleType = field(repr=False, compare=False)
    _roles: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)  # role -> name
    _extra_inputs: Mapping[str, Mapping[str, Any]] | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def program(self, function_source: str) -> str:
        """Return the spec's program with the evolved function replaced."""
        lines = self.program_source.splitlines()
        start, end = self.function_span
        new = function_source.rstrip("\n").splitlines()
        return "\n".join(lines[: start - 1] + new + lines[end:]) + "\n"

    def locate(self, evaluation: Evaluation, function_source: str, first_line: int | None = None) -> Evaluation:
        """Say where a failed `self.program(function_source)` failed: in the function, or in the spec.

        The sandbox counts lines in the whole program (the spec's preface,
        then the function). A line inside the function becomes "(line k of
        NAME)", or "(line k)" counted from `first_line` when the function was
        read from a file at that line; one outside it becomes the spec file's
        own line.
        """
        line = evaluation.line
        suffix = f" (line {line})"
        if line is None or not evaluation.error.endswith(suffix):
            return evaluation
        start, end = self.function_span
        length = len(function_source.rstrip("\n").splitlines())
        if start <= line < start + length:
            where = f"line {line - start + first_line}" if first_line else f"line {line - start + 1} of {self.function_name}"
        else:
            spec_line = line if line < start else line - length + (end - start + 1)
            where = f"line {spec_line} of {self.path.name}"
        return replace(evaluation, error=f"{evaluation.error[: -len(suffix)]} ({where})")

    def inputs(self, split: str) -> dict[str, Any]:
        """Return the inputs of a split, {input name: value}, in a stable order."""
        if split not in self._cache:
            self._cache[split] = self._load_inputs(split)
        return self._cache[split]

    def has_split(self, split: str) -> bool:
        try:
            self.inputs(split)
        except SpecError:
            return False
        return True

    def metrics(self, split: str, scores: Mapping[str, float]) -> dict[str, Any]:
        """Return the spec's extra figures for per-input scores ({} if it has none)."""
        fn = self._role_function("metrics")
        if fn is None or not scores:
            return {}
        try:
            return dict(fn(split, self.inputs(split), dict(scores)))
        except Exception as exc:  # the spec's own code; report, do not crash the run
            log.warning("%s: metrics function failed: %s", self.path, exc)
            return {}

    def verify(self, split: str, evaluation: Evaluation) -> Evaluation:
        """Re-score a successful evaluation with the spec's `@evolve.check`, if it has one."""
        check = self._role_function("check")
        if check is None or not evaluation.ok:
            return evaluation
        inputs, scores = self.inputs(split), {}
        for name, claimed in evaluation.scores.items():
            if name not in evaluation.outputs:
                return _failed(evaluation, FailureKind.INVALID_OUTPUT,
                               f"no output to check on input {name!r}: the entry must return {{'score': ..., 'output': ...}}")
            try:
                score = float(check(inputs[name], evaluation.outputs[name]))
            except Exception as exc:  # the check rejecting the output is the candidate's failure
                return _failed(evaluation, FailureKind.INVALID_OUTPUT, f"check rejected the output on {name!r}: {exc}")
            if not math.isfinite(score):
                return _failed(evaluation, FailureKind.INVALID_OUTPUT, f"check gave a non-finite score on {name!r}")
            if not math.isclose(score, claimed, rel_tol=1e-9, abs_tol=1e-9):
                return _failed(evaluation, FailureKind.FORBIDDEN,
                               f"claimed score {claimed:.6g} on {name!r} but its output scores {score:.6g}")
            scores[name] = score
        return replace(evaluation, scores=scores)

    def baseline_functions(self) -> dict[str, str]:
        """Return {name: source renamed to the evolved function's name}.

        The seed (the evolved function as written) comes first, as `seed`.
        """
        out = {"seed": self.function}
        lines = self.program_source.splitlines()
        for marked in _marked_functions(ast.parse(self.program_source), lines):
            if marked.role == "baseline":
                src = "\n".join(lines[marked.line - 1 : marked.end])
                out[marked.name] = rename_function(src, marked.name, self.function_name)
        return out

    def _role_function(self, role: str) -> Any:
        name = self._roles.get(role)
        return self._module.__dict__.get(name) if name else None

    def _load_inputs(self, split: str) -> dict[str, Any]:
        if self._extra_inputs is not None and split in self._extra_inputs:
            return dict(self._extra_inputs[split])
        declared = getattr(self._module, "INPUTS", None)
        if isinstance(declared, Mapping):
            splits = _as_splits(declared)
            if split in splits:
                return dict(splits[split])
        loader = self._role_function("inputs")
        if loader is not None:
            try:
                value = loader(split)
            except KeyError:
                value = None
            except Exception as exc:
                raise SpecError(self.path, _line_of(loader), f"the inputs loader failed for split {split!r}: {exc}") from exc
            if value is not None:
                if not isinstance(value, Mapping) or not value:
                    raise SpecError(
                        self.path, _line_of(loader), f"the inputs loader returned {type(value).__name__} for {split!r}",
                        "return a non-empty dict {input name: value}",
                    )
                return dict(value)
        raise SpecError(self.path, self.entry_line, f"no {split!r} split of inputs", _NO_INPUTS_FIX)


_NO_INPUTS_FIX = (
    "define INPUTS = {'train': {name: value}, 'test': {...}} in the spec, "
    "mark a loader function with @evolve.inputs, or pass --inputs FILE.json"
)


def load_spec(target: str | Path, inputs_file: Path | None = None) -> Spec:
    """Load a built-in problem by name, or a spec file by path."""
    builtin = isinstance(target, str) and target in BUILTINS
    path = builtin_path(target) if builtin else Path(target)
    if not path.is_file():
        known = ", ".join(BUILTINS)
        raise SpecError(path, None, "no such spec file or built-in problem", f"pass a .py file or one of: {known}")
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, f"cannot read the spec: {exc}") from exc
    extra = read_inputs_file(inputs_file) if inputs_file is not None else None
    return parse_spec(source, path, name=str(target) if builtin else path.stem, builtin=builtin, extra_inputs=extra)


def parse_spec(
    source: str,
    path: Path,
    *,
    name: str | None = None,
    builtin: bool = False,
    extra_inputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Spec:
    """Build a `Spec` from source text (`path` names it in errors and as `__file__`)."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise SpecError(path, exc.lineno, f"syntax error: {exc.msg}", "fix the Python syntax") from exc
    lines = source.splitlines()
    marked = _marked_functions(tree, lines)
    run = _exactly_one(path, marked, "run", "the entry point that takes one input and returns a score")
    evolved = _exactly_one(path, marked, "evolve", "the function to evolve")
    program_source = _sanitize(tree, lines, marked)
    module = _execute(program_source, path)
    spec = Spec(
        name=name or path.stem,
        path=path,
        source=source,
        program_source=program_source,
        entry=run.name,
        entry_line=run.line,
        function_name=evolved.name,
        function="\n".join(lines[evolved.line - 1 : evolved.end]) + "\n",
        function_span=(evolved.line, evolved.end),
        baselines=tuple(m.name for m in marked if m.role == "baseline"),
        gp_primitives=getattr(module, "GP_PRIMITIVES", None),
        builtin=builtin,
        _module=module,
        _roles={m.role: m.name for m in marked if m.role in ("inputs", "metrics", "check")},
        _extra_inputs=extra_inputs,
    )
    if not spec.has_split("train"):
        raise SpecError(path, run.line, f"no inputs for `{run.name}`", _NO_INPUTS_FIX)
    return spec


def _failed(evaluation: Evaluation, kind: FailureKind, error: str) -> Evaluation:
    return Evaluation(wall_time=evaluation.wall_time, failure=kind, error=error[:300], node=evaluation.node)


def rename_function(source: str, old: str, new: str) -> str:
    """Rename the `def old(` of a function's source to `new`."""
    return re.sub(rf"^(\s*(?:async\s+)?def\s+){re.escape(old)}\b", rf"\g<1>{new}", source, count=1, flags=re.M)


def _marked_functions(tree: ast.Module, lines: list[str]) -> list[_Marked]:
    """Find top-level functions marked by role decorators, real or commented out."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        roles, real = [], []
        for dec in node.decorator_list:
            if isinstance(dec, ast.Attribute) and isinstance(dec.value, ast.Name) and dec.attr in ROLES:
                roles.append(dec.attr)
                real.append(dec.lineno)
        # Commented decorators sit on the lines just above the first decorator or the def.
        top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        i = top - 2
        while i >= 0 and lines[i].lstrip().startswith("#"):
            m = _COMMENTED_DECORATOR.match(lines[i])
            if m and m.group(2) in ROLES:
                roles.append(m.group(2))
            i -= 1
        for role in dict.fromkeys(roles):
            found.append(_Marked(role, node.name, node.lineno, node.end_lineno or node.lineno, tuple(real)))
    return found


def _exactly_one(path: Path, marked: list[_Marked], role: str, what: str) -> _Marked:
    hits = [m for m in marked if m.role == role]
    if not hits:
        raise SpecError(path, None, f"no function is marked @evolve.{role} ({what})", f"add @evolve.{role} above it")
    if len(hits) > 1:
        where = ", ".join(f"`{m.name}` (line {m.line})" for m in hits)
        raise SpecError(path, hits[1].line, f"{len(hits)} functions are marked @evolve.{role}: {where}", "keep exactly one")
    return hits[0]


def _sanitize(tree: ast.Module, lines: list[str], marked: list[_Marked]) -> str:
    """Comment out marker decorators and imports, keeping every line number."""
    out = list(lines)
    for m in marked:
        for n in m.decorator_lines:
            out[n - 1] = "# " + out[n - 1]
    for node in tree.body:
        if isinstance(node, ast.Import) and all(a.name in MARKER_MODULES for a in node.names):
            for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                out[n - 1] = "# " + out[n - 1] if n > node.lineno else "pass  # " + out[n - 1]
    return "\n".join(out) + "\n"


def _execute(program_source: str, path: Path) -> types.ModuleType:
    """Run the spec's own module code (trusted: the user's file) to reach its data."""
    module = types.ModuleType("evolve_spec_" + re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path)
    try:
        exec(compile(program_source, str(path), "exec"), module.__dict__)
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else None
        raise SpecError(path, line, f"running the spec failed: {type(exc).__name__}: {exc}") from exc
    return module


def _line_of(fn: Any) -> int | None:
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code else None


def _as_splits(declared: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Accept {split: {name: value}} or a flat {name: value} (taken as train)."""
    if "train" in declared and isinstance(declared["train"], Mapping):
        return {k: v for k, v in declared.items() if isinstance(v, Mapping)}
    return {"train": declared}


def read_inputs_file(path: Path) -> dict[str, Mapping[str, Any]]:
    if Path(path).is_dir() or str(path).endswith((".csv", ".csv.gz")):
        # LLM-SR data: one CSV, or a directory of <split>.csv[.gz]; each split is {"data": {"inputs", "outputs"}}.
        from evolve.problems.llmsr_data import inputs_from_csv

        try:
            return inputs_from_csv(Path(path))
        except (OSError, ValueError, EOFError) as exc:
            raise SpecError(path, None, f"cannot read LLM-SR data: {exc}", "pass a CSV with a header row, the target last") from exc
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(path, None, f"cannot read the inputs file: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(path, exc.lineno, f"not valid JSON: {exc.msg}", "write a JSON object {name: value}") from exc
    if not isinstance(data, dict) or not data:
        raise SpecError(path, 1, "the inputs file must hold a non-empty JSON object", "write {name: value} or {'train': {...}}")
    return _as_splits(data)
