"""Convert between Python source and DEAP trees: parse, map onto the grammar, render.

`expr_to_tree` accepts the forms `tree_to_expr` emits (np.divide, np.sqrt(np.abs(x)),
np.log(np.abs(x) + 1e-09), np.exp(np.minimum(x, 50.0))) and natural ones (a / b,
a ** 2, np.sqrt(x), ...). Natural sqrt/log/div map onto the protected operators,
so their meaning changes only where the unprotected form would give nan or raise.
"""

from __future__ import annotations

import ast
import copy
import math
import textwrap

from deap import gp

from evolve.proposers.gp.primitives import (
    CONST_NAME, EXP_CLIP, LOG_EPS, TYPES, Scalar, Signature, operator_of, primitive_name,
)

Nodes = list  # a prefix-order list of gp.Primitive / gp.Terminal


class Unconvertible(Exception):
    """The expression has no counterpart in the primitive set."""


_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
_NUMPY_BINARY = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
                 "true_divide": "div", "minimum": "minimum", "maximum": "maximum"}
_NUMPY_UNARY = {"negative": "neg", "square": "square", "sqrt": "sqrt", "exp": "exp",
                "log": "log", "abs": "abs", "absolute": "abs", "tanh": "tanh", "sin": "sin", "cos": "cos",
                "min": "min", "amin": "min", "max": "max", "amax": "max",
                "mean": "mean", "sum": "sum"}
_NAMED_CONSTANTS = {"pi": math.pi, "e": math.e}


def find_function(source: str, name: str | None = None) -> ast.FunctionDef | None:
    """Parse `source` and return the top-level def `name` (or its only def); None if none."""
    try:
        module = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    defs = [s for s in module.body if isinstance(s, ast.FunctionDef)]
    for fn in defs:
        if fn.name == name:
            return fn
    return defs[0] if len(defs) == 1 else None


def body_without_docstring(fn: ast.FunctionDef) -> list[ast.stmt]:
    """Return the statements of `fn` after its docstring."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def make_constant(pset: gp.PrimitiveSetTyped, value: float) -> gp.Terminal:
    """Build an ephemeral-constant node holding `value` without drawing a random one."""
    cls = pset.mapping[CONST_NAME]
    node = cls.__new__(cls)
    node.value = float(value)
    return node


def _is_np(func: ast.expr) -> str | None:
    """Return `attr` for `np.attr` / `numpy.attr`, else None."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id in ("np", "numpy"):
        return func.attr
    return None


def _np_call(node: ast.expr, attr: str, nargs: int) -> list[ast.expr] | None:
    """Return the positional args of `np.attr(...)` with `nargs` args, else None."""
    if isinstance(node, ast.Call) and _is_np(node.func) == attr and not node.keywords \
            and len(node.args) == nargs:
        return node.args
    return None


def _number(node: ast.expr) -> float | None:
    """Return the value of a numeric literal (possibly negated), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if _is_np(node) in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.attr]  # type: ignore[attr-defined]
    return None


def _strip_protection(op: str, arg: ast.expr) -> ast.expr:
    """Undo the guards the renderer adds around sqrt, log and exp arguments."""
    if op == "sqrt" and (inner := _np_call(arg, "abs", 1)):
        return inner[0]
    if op == "log" and isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add) \
            and _number(arg.right) == LOG_EPS and (inner := _np_call(arg.left, "abs", 1)):
        return inner[0]
    if op == "exp" and (inner := _np_call(arg, "minimum", 2)) and _number(inner[1]) == EXP_CLIP:
        return inner[0]
    return arg


class _Builder:
    """Map a Python expression onto prefix-order nodes, checking types on the way up."""

    def __init__(self, pset: gp.PrimitiveSetTyped, sig: Signature) -> None:
        self.pset = pset
        self.args = {name: pset.mapping[name] for name, _ in sig.args}
        self.terminals = {source: pset.mapping[source] for source, _ in sig.terminals}

    def apply(self, op: str, children: list[ast.expr]) -> tuple[Nodes, type]:
        built = [self.build(c) for c in children]
        prim = self.pset.mapping.get(primitive_name(op, tuple(t for _, t in built)))
        if prim is None:  # operator not declared, or no such typed variant
            raise Unconvertible(f"{op} over {[t.__name__ for _, t in built]}")
        return [prim] + [n for nodes, _ in built for n in nodes], prim.ret

    def build(self, node: ast.expr) -> tuple[Nodes, type]:
        if (value := _number(node)) is not None:
            return [make_constant(self.pset, value)], Scalar
        if isinstance(node, ast.Name) and node.id in self.args:
            term = self.args[node.id]
            return [term], term.ret
        if self.terminals and isinstance(node, (ast.Subscript, ast.Call, ast.Attribute)) \
                and (term := self.terminals.get(ast.unparse(node))) is not None:
            return [term], term.ret  # a declared terminal such as params[3]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            return self.build(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.apply("neg", [node.operand])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self.apply(_BINOPS[type(node.op)], [node.left, node.right])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = _number(node.right)
            if exponent == 2:
                return self.apply("square", [node.left])
            if exponent == 0.5:
                return self.apply("sqrt", [node.left])
        if isinstance(node, ast.Call) and not node.keywords:
            name = _is_np(node.func)
            if isinstance(node.func, ast.Name) and node.func.id == "abs":
                name = "abs"
            if name == "mod" and len(node.args) == 2 and _number(node.args[1]) == 3.0:
                return self.apply("mod3", [node.args[0]])
            if name in _NUMPY_BINARY and len(node.args) == 2:
                return self.apply(_NUMPY_BINARY[name], list(node.args))
            if name in _NUMPY_UNARY and len(node.args) == 1:
                op = _NUMPY_UNARY[name]
                return self.apply(op, [_strip_protection(op, node.args[0])])
        raise Unconvertible(ast.unparse(node)[:80])


def expr_to_tree(expr: ast.expr, pset: gp.PrimitiveSetTyped, sig: Signature) -> gp.PrimitiveTree:
    """Convert an expression whose value has the signature's return type; raise Unconvertible."""
    try:
        nodes, type_ = _Builder(pset, sig).build(expr)
    except RecursionError as exc:
        raise Unconvertible("expression too deep") from exc
    if type_ is not TYPES[sig.returns]:
        raise Unconvertible(f"expression is {type_.__name__}, function returns {sig.returns}")
    return gp.PrimitiveTree(nodes)


def function_to_tree(fn: ast.FunctionDef, pset: gp.PrimitiveSetTyped,
                     sig: Signature) -> gp.PrimitiveTree | None:
    """Return the tree of a function whose body is one `return <expr>`, else None."""
    body = body_without_docstring(fn)
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    try:
        return expr_to_tree(body[0].value, pset, sig)
    except Unconvertible:
        return None


def _format_constant(value: float) -> str:
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


def tree_to_expr(tree: gp.PrimitiveTree) -> str:
    """Render a tree as a numpy expression (source text, normalized by ast.unparse)."""
    def render(i: int) -> tuple[str, int]:
        node = tree[i]
        if isinstance(node, gp.Primitive):
            parts, j = [], i + 1
            for _ in range(node.arity):
                text, j = render(j)
                parts.append(text)
            return operator_of(node).template.format(*parts), j
        if isinstance(type(node), gp.MetaEphemeral):
            return _format_constant(node.value), i + 1
        return str(node.value), i + 1  # an argument: its name

    text, end = render(0)
    assert end == len(tree), "a tree is one complete prefix expression"
    return ast.unparse(ast.parse(text, mode="eval"))


def render_function(template: ast.FunctionDef, name: str, expr: str) -> str:
    """Return `def name(<template's signature>): ["docstring"] return <expr>` as source."""
    # A shallow copy: only the name and the body list change, and unparse reads
    # the rest (signature, decorators) without touching it. Deep-copying the
    # template was most of the GP proposer's CPU.
    fn = copy.copy(template)
    fn.name = name
    docstring = template.body[: len(template.body) - len(body_without_docstring(template))]
    fn.body = docstring + [ast.Return(value=ast.parse(expr, mode="eval").body)]
    return ast.unparse(fn)

