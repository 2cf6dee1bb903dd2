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
    @evolve.score      # optional, trusted: like check, for a score only trusted code computes (claim ignored)

Inputs come from a module-level `INPUTS` mapping (either `{split: {name:
value}}` or a flat `{name: value}` taken as the `train` split), an
`@evolve.inputs` loader, or a file passed with `--inputs` (`evolve.inputs_file`:
JSON, OR-Library text, FunSearch's bin-packing JSON, LLM-SR CSV). A spec that
imports torch (LLM-SR's `*_torch` specs) gets the arrays of an `--inputs` file
as float32 tensors, as LLM-SR hands them over.

A spec may also be a Jupyter notebook (`evolve.notebook`): the cells that
make it up are taken in order, and `Spec.notes` says which.

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
import logging
import math
import re
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evolve.inputs_file import InputsFileError, as_splits as _as_splits, read_inputs_file as _read_inputs_file
from evolve.notebook import NotebookError, cell_of, notebook_spec
from evolve.problems import BUILTINS, builtin_path
from sandbox import Evaluation, FailureKind, Program

log = logging.getLogger(__name__)

ROLES = ("run", "evolve", "inputs", "baseline", "metrics", "check", "score")
# Modules whose decorators mark roles and whose imports the loader removes.
MARKER_MODULES = frozenset({"evolve", "funsearch", "evaluate", "equation"})
_COMMENTED_DECORATOR = re.compile(r"^\s*#\s*@\s*(\w+)\.(\w+)\s*(\(\s*\))?\s*$")
SPLITS = ("train", "test")
# Split names tried on a loader when listing the splits a spec has (a loader cannot list its own).
KNOWN_SPLITS = ("train", "test", "test_id", "test_ood", "valid", "validation", "val")


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
    notes: tuple[str, ...]  # for the user: how the spec was read (a notebook's cells)
    _module: types.ModuleType = field(repr=False, compare=False)
    _roles: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)  # role -> name
    _extra_inputs: Mapping[str, Mapping[str, Any]] | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def program(self, function_source: str) -> str:
        """Return the spec's program with the evolved function replaced.

        A `sandbox.Program` when there is a function: the sandbox then compiles
        the spec's own code once per worker rather than once per candidate.
        """
        lines = self.program_source.splitlines()
        start, end = self.function_span
        new = function_source.rstrip("\n").splitlines()
        if not new:
            return "\n".join(lines[: start - 1] + lines[end:]) + "\n"
        head, tail = lines[: start - 1], lines[end:]
        return Program(*("".join(line + "\n" for line in part) for part in (head, new, tail)))

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
            where = f"{self.where(spec_line)} of {self.path.name}"
        return replace(evaluation, error=f"{evaluation.error[: -len(suffix)]} ({where})")

    def where(self, line: int) -> str:
        """Name line `line` of the spec as the user sees it: "line 12", or "cell 5, line 3" in a notebook."""
        return (cell_of(self.source, line) if self.path.suffix == ".ipynb" else None) or f"line {line}"

    def splits(self) -> list[str]:
        """Return the names of the splits of inputs this spec has (a loader is asked for the usual names)."""
        names = list(self._extra_inputs or {})
        declared = getattr(self._module, "INPUTS", None)
        if isinstance(declared, Mapping):
            names += list(_as_splits(declared))
        if self._role_function("inputs") is not None:
            names += KNOWN_SPLITS
        out = []
        for name in sorted(dict.fromkeys(names), key=lambda n: (n != "train", n != "test")):  # train, test, the rest
            try:
                if self._find_inputs(name) is not None:
                    out.append(name)
            except SpecError:
                continue
        return out

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

    @property
    def verifies(self) -> bool:
        """Whether results are re-scored by trusted code (`@evolve.check` or `@evolve.score`)."""
        return bool(self._role_function("score") or self._role_function("check"))

    @property
    def claims_are_placeholders(self) -> bool:
        """Whether the sandbox's scores mean nothing until trusted code scores the output (`@evolve.score`)."""
        return self._role_function("score") is not None

    def verify(self, split: str, evaluation: Evaluation) -> Evaluation:
        """Re-score a successful evaluation with the spec's `@evolve.check` (or `@evolve.score`), if it has one.

        A `score` function is the scorer itself: the entry's claim is a
        placeholder, so that costly work (an elimination, a simulation) runs
        once, in trusted code, and never in the sandbox.
        """
        scorer = self._role_function("score")
        check = scorer or self._role_function("check")
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
            if scorer is None and not math.isclose(score, claimed, rel_tol=1e-9, abs_tol=1e-9):
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
        found = self._find_inputs(split)
        if found is not None:
            return found
        others = [s for s in self.splits() if s != split]
        if others:
            raise SpecError(self.path, None, f"no {split!r} split of inputs; the splits are: {', '.join(others)}",
                            f"pass --split {others[0]}" if len(others) == 1 else "pass --split with one of them")
        raise SpecError(self.path, self.entry_line, f"no {split!r} split of inputs", _NO_INPUTS_FIX)

    def _find_inputs(self, split: str) -> dict[str, Any] | None:
        if self._extra_inputs is not None and split in self._extra_inputs:
            return dict(self._extra_inputs[split])
        declared = getattr(self._module, "INPUTS", None)
        if isinstance(declared, Mapping):
            splits = _as_splits(declared)
            if split in splits:
                return dict(splits[split])
        loader = self._role_function("inputs")
        if loader is None:
            return None
        try:
            value = loader(split)
        except KeyError:
            return None
        except Exception as exc:
            raise SpecError(self.path, _line_of(loader), f"the inputs loader failed for split {split!r}: {exc}") from exc
        if value is None:
            return None
        if not isinstance(value, Mapping) or not value:
            raise SpecError(
                self.path, _line_of(loader), f"the inputs loader returned {type(value).__name__} for {split!r}",
                "return a non-empty dict {input name: value}",
            )
        return dict(value)


_NO_INPUTS_FIX = (
    "define INPUTS = {'train': {name: value}, 'test': {...}} in the spec, "
    "mark a loader function with @evolve.inputs, or pass --inputs FILE (JSON, OR-Library text, LLM-SR CSV)"
)


def load_spec(target: str | Path, inputs_file: Path | None = None) -> Spec:
    """Load a built-in problem by name, or a spec file (.py, or a notebook .ipynb) by path."""
    builtin = isinstance(target, str) and target in BUILTINS
    path = builtin_path(str(target)) if builtin else Path(target)
    if not path.is_file():
        known = ", ".join(BUILTINS)
        raise SpecError(path, None, "no such spec file or built-in problem", f"pass a .py file or one of: {known}")
    notes: tuple[str, ...] = ()
    if path.suffix == ".ipynb":
        try:
            notebook = notebook_spec(path, lambda tree, lines: bool(_marked_functions(tree, lines)))
        except NotebookError as exc:
            raise SpecError(path, None, exc.message, exc.fix) from exc
        source, notes = notebook.source, (notebook.note,)
    else:
        try:
            source = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(path, None, f"cannot read the spec: {exc}") from exc
    extra = read_inputs_file(inputs_file) if inputs_file is not None else None
    return parse_spec(source, path, name=str(target) if builtin else path.stem, builtin=builtin, extra_inputs=extra,
                      notes=notes)


def parse_spec(
    source: str,
    path: Path,
    *,
    name: str | None = None,
    builtin: bool = False,
    extra_inputs: Mapping[str, Mapping[str, Any]] | None = None,
    notes: tuple[str, ...] = (),
) -> Spec:
    """Build a `Spec` from source text (`path` names it in errors and as `__file__`).

    For a notebook (`path` ending in .ipynb) `source` is what `evolve.notebook` assembled from its cells.
    """
    try:
        return _parse_spec(source, path, name, builtin, extra_inputs, notes)
    except SpecError as exc:
        if path.suffix != ".ipynb" or exc.line is None or not (cell := cell_of(source, exc.line)):
            raise
        raise SpecError(path, None, f"{cell}: {exc.message}", exc.fix) from exc


def _parse_spec(source: str, path: Path, name: str | None, builtin: bool,
                extra_inputs: Mapping[str, Mapping[str, Any]] | None, notes: tuple[str, ...]) -> Spec:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise SpecError(path, exc.lineno, f"syntax error: {exc.msg}", "fix the Python syntax") from exc
    lines = source.splitlines()
    marked = _marked_functions(tree, lines)
    run = _exactly_one(path, marked, "run", "the entry point that takes one input and returns a score")
    evolved = _exactly_one(path, marked, "evolve", "the function to evolve")
    _defined_once(path, tree, evolved, source)  # before the spec's code runs: it may take long
    program_source = _sanitize(tree, lines, marked)
    module = _execute(program_source, path)
    if extra_inputs is not None and _imports_torch(module):
        extra_inputs = _as_tensors(extra_inputs)
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
        notes=notes,
        _module=module,
        _roles={m.role: m.name for m in marked if m.role in ("inputs", "metrics", "check", "score")},
        _extra_inputs=extra_inputs,
    )
    if not spec.has_split("train"):
        others = spec.splits()
        if others:
            raise SpecError(path, None, f"no 'train' split of inputs (evolution needs one); the splits are: "
                            f"{', '.join(others)}", "name the inputs to evolve on `train`")
        raise SpecError(path, run.line, f"no inputs for `{run.name}`", _NO_INPUTS_FIX)
    return spec


def _defined_once(path: Path, tree: ast.Module, evolved: _Marked, source: str) -> None:
    """Refuse a spec that defines the evolved function twice: which one is the seed would be a guess."""
    lines = [n.lineno for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == evolved.name]
    if len(lines) < 2:
        return
    if path.suffix == ".ipynb":
        where = " and ".join(cell_of(source, n) or f"line {n}" for n in lines)
    else:
        where = "lines " + " and ".join(map(str, lines))
    raise SpecError(path, None, f"`{evolved.name}` is defined {len(lines)} times ({where})",
                    f"keep only the one marked @evolve.evolve (line {evolved.line}); rename or remove the other"
                    if path.suffix != ".ipynb" else "keep only the one marked @evolve.evolve")


def _imports_torch(module: types.ModuleType) -> bool:
    return any(isinstance(v, types.ModuleType) and v.__name__.split(".")[0] == "torch" for v in vars(module).values())


def _as_tensors(value: Any) -> Any:
    """Turn the numpy arrays of loaded inputs into float32 tensors (LLM-SR's `torch.Tensor(X)`), keeping the layout."""
    import numpy as np
    import torch

    if isinstance(value, Mapping):
        return {k: _as_tensors(v) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.Tensor(value)
    return value


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


def read_inputs_file(path: Path) -> dict[str, Mapping[str, Any]]:
    """Read an `--inputs` file (see `evolve.inputs_file`); SpecError naming the file when it is malformed."""
    try:
        return _read_inputs_file(path)
    except InputsFileError as exc:
        raise SpecError(exc.path, exc.line, exc.message, exc.fix) from exc
