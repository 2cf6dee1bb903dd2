"""Mutate and cross arbitrary Python functions at the AST level.

Used for parents that do not fit the primitive set (several statements, loops,
indexing, comparisons) and for problems whose types cannot be inferred.
Every operator edits a deep copy of a parsed `ast.FunctionDef`; callers render
with `ast.unparse`, so the output always parses. Only the body (after the
docstring) is touched: the signature, annotations and decorators stay.
"""

from __future__ import annotations

import ast
import builtins
import copy
import math
import random
from collections.abc import Callable, Iterator

from evolve.proposers.gp.convert import body_without_docstring

Flags = frozenset[str]
_NO_FLAGS: Flags = frozenset()
_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_EQUALITY = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
# numpy functions that can replace each other (same arity, same kind of result)
_NUMPY_GROUPS = (
    ("exp", "log", "sqrt", "abs", "square", "tanh", "log1p"),
    ("minimum", "maximum"), ("fmin", "fmax"),
    ("min", "max", "mean", "sum", "median"), ("amin", "amax"), ("argmin", "argmax"),
)
_NUMPY_SWAPS = {name: group for group in _NUMPY_GROUPS for name in group}
_BUILTIN_SWAPS = {"min": "max", "max": "min"}
_KNOWN_NAMES = frozenset(dir(builtins)) | {"np", "numpy", "math"}
# weights of the mutation kinds, among those with a site in the function
WEIGHTS = {"constant": 4.0, "binop": 1.5, "compare": 1.0, "call": 1.5, "wrap": 2.0}


def perturb_value(value: float, rng: random.Random, sigma: float) -> float:
    """Perturb a float: multiplicative log-normal or additive Gaussian, 4 significant digits."""
    if value != 0 and rng.random() < 0.5:
        new = value * math.exp(rng.gauss(0.0, sigma))
    else:
        new = value + rng.gauss(0.0, sigma)
    return float(f"{new:.4g}")


def _perturb_int(value: int, rng: random.Random, sigma: float) -> int:
    """Perturb an int, keeping it an int (it may be an index or a count)."""
    if abs(value) > 4 and rng.random() < 0.5:
        new = round(value * math.exp(rng.gauss(0.0, sigma)))
    else:
        new = value + rng.choice((-2, -1, 1, 2))
    return new if new != value else value + 1


def _walk(node: ast.AST, flags: Flags = _NO_FLAGS) -> Iterator[tuple[ast.AST, Flags]]:
    """Yield every node with the contexts it sits in (slice, keyword, func, attr, target)."""
    yield node, flags
    for field, value in ast.iter_fields(node):
        extra = None
        if isinstance(node, ast.Subscript) and field == "slice":
            extra = "slice"
        elif isinstance(node, ast.keyword):
            extra = "keyword"
        elif isinstance(node, ast.Call) and field == "func":
            extra = "func"
        elif isinstance(node, ast.Attribute):
            extra = "attr"
        elif field in ("target", "targets") or isinstance(
                node, (ast.FunctionDef, ast.Lambda)) and field in ("args", "returns", "decorator_list"):
            extra = "target"
        sub = flags | {extra} if extra else flags
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from _walk(child, sub)


def _body_nodes(fn: ast.FunctionDef) -> Iterator[tuple[ast.AST, Flags]]:
    for stmt in body_without_docstring(fn):
        yield from _walk(stmt)


def _replace(root: ast.AST, target: ast.AST, new: ast.AST) -> None:
    """Put `new` where `target` is under `root` (nodes are compared by identity)."""
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        value[i] = new
                        return
    raise AssertionError("target is not under root")


def _literal(value: float) -> ast.expr:
    """A numeric literal; negatives as `-(c)` so unparse never glues operators."""
    if value < 0 or (value == 0 and math.copysign(1.0, value) < 0):
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=-value))
    return ast.Constant(value=value)


def _site_kind(node: ast.AST, flags: Flags) -> str | None:
    """Return the kind of mutation that applies at `node`, if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool) and not flags & {"slice", "keyword"}:
        return "constant"
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAPS:
        return "binop"
    if isinstance(node, ast.Compare) \
            and any(isinstance(op, _ORDER) or type(op) in _EQUALITY for op in node.ops):
        return "compare"
    if isinstance(node, ast.Call) and (
            isinstance(node.func, ast.Attribute) and node.func.attr in _NUMPY_SWAPS
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy")
            or isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAPS):
        return "call"
    if isinstance(node, ast.Return) and node.value is not None:
        return "wrap"
    return None


def _sites(fn: ast.FunctionDef) -> dict[str, list[ast.AST]]:
    """Group the nodes of `fn`'s body by the kind of mutation that applies there."""
    out: dict[str, list[ast.AST]] = {kind: [] for kind in WEIGHTS}
    for node, flags in _body_nodes(fn):
        if kind := _site_kind(node, flags):
            out[kind].append(node)
    return out


def _mutate_site(fn: ast.FunctionDef, kind: str, node: ast.AST, rng: random.Random,
                 sigma: float, wrap: Callable[[], str] | None) -> None:
    if kind == "constant":
        value = node.value  # type: ignore[attr-defined]
        new = _perturb_int(value, rng, sigma) if isinstance(value, int) \
            else perturb_value(value, rng, sigma)
        _replace(fn, node, _literal(new))
    elif kind == "binop":
        node.op = _BINOP_SWAPS[type(node.op)]()  # type: ignore[attr-defined]
    elif kind == "compare":
        ops = node.ops  # type: ignore[attr-defined]
        i = rng.choice([i for i, op in enumerate(ops) if isinstance(op, _ORDER) or type(op) in _EQUALITY])
        if type(ops[i]) in _EQUALITY:
            ops[i] = _EQUALITY[type(ops[i])]()
        else:
            ops[i] = rng.choice([op for op in _ORDER if not isinstance(ops[i], op)])()
    elif kind == "call":
        func = node.func  # type: ignore[attr-defined]
        if isinstance(func, ast.Name):
            func.id = _BUILTIN_SWAPS[func.id]
        else:
            func.attr = rng.choice([n for n in _NUMPY_SWAPS[func.attr] if n != func.attr])
    elif kind == "wrap":
        assert wrap is not None
        scale = rng.choice((-1.0, 1.0)) * float(f"{10 ** rng.uniform(-2.0, 0.0):.3g}")
        term = ast.BinOp(left=ast.Constant(value=scale), op=ast.Mult(),
                         right=ast.parse(wrap(), mode="eval").body)
        node.value = ast.BinOp(left=node.value, op=ast.Add(), right=term)  # type: ignore[attr-defined]


def mutate_function(fn: ast.FunctionDef, rng: random.Random, *, sigma: float = 0.3,
                    wrap: Callable[[], str] | None = None, count: int = 1) -> ast.FunctionDef:
    """Return a copy of `fn` with `count` random edits among those that apply.

    `wrap`, when given, returns a random expression (source) of the function's
    return type: it enables `return old` -> `return old + c * (expr)`.
    """
    new = copy.deepcopy(fn)
    for _ in range(count):
        sites = _sites(new)
        kinds = [k for k in WEIGHTS if (k != "wrap" or wrap is not None) and sites[k]]
        if not kinds:
            break
        kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        _mutate_site(new, kind, rng.choice(sites[kind]), rng, sigma, wrap)
    return ast.fix_missing_locations(new)


def _category(node: ast.AST, flags: Flags) -> str | None:
    """Classify a graftable expression as "value" or "bool"; None when not graftable."""
    if flags & {"slice", "keyword", "func", "attr", "target"}:
        return None
    if isinstance(node, (ast.Compare, ast.BoolOp)) or \
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return "bool"
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) or \
            isinstance(node, (ast.Name, ast.Subscript)) and isinstance(node.ctx, ast.Load) or \
            isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return "value"
    return None


def _defined_names(fn: ast.FunctionDef) -> set[str]:
    """Names a grafted expression may use in `fn`: arguments, locals, builtins, np, math."""
    names = {a.arg for a in fn.args.args + fn.args.kwonlyargs + fn.args.posonlyargs}
    names |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names | _KNOWN_NAMES


def crossover_functions(recipient: ast.FunctionDef, donor: ast.FunctionDef,
                        rng: random.Random, tries: int = 8) -> ast.FunctionDef | None:
    """Graft an expression of `donor` into a copy of `recipient`; None when nothing fits.

    The grafted expression only uses names the recipient defines, and replaces an
    expression of the same category (a value by a value, a condition by a condition).
    """
    new = copy.deepcopy(recipient)
    targets = [(n, c) for n, f in _body_nodes(new) if (c := _category(n, f))]
    defined = _defined_names(new)
    donors = [(n, c) for n, f in _body_nodes(donor) if (c := _category(n, f))
              and {x.id for x in ast.walk(n) if isinstance(x, ast.Name)} <= defined]
    if not targets or not donors:
        return None
    for _ in range(tries):
        target, category = rng.choice(targets)
        matching = [n for n, c in donors if c == category]
        if not matching:
            continue
        graft = rng.choice(matching)
        if ast.dump(graft) != ast.dump(target):
            _replace(new, target, copy.deepcopy(graft))
            return ast.fix_missing_locations(new)
    return None


def size(fn: ast.AST) -> int:
    """Count the AST nodes of `fn` (the bloat measure of the AST path)."""
    return sum(1 for _ in ast.walk(fn))
