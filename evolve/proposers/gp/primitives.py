"""The typed primitive set: scalar and 1-d array values, operators as numpy source.

A problem declares the evolved function's interface as a plain mapping::

    {"args": {"item": "scalar", "bins": "array"}, "returns": "array",
     "operators": ["add", "sub", "mul", "div", "neg", "sqrt", "min", "mean"],
     "constants": [-2.0, 2.0]}

or leaves it to be inferred from the seed function's annotations. Two more
kinds of leaf are optional: an argument of type "params" (LLM-SR's vector of
fitted constants) becomes the terminals `params[0]` .. `params[num_params-1]`
(default 10), each a scalar; and "terminals" maps extra source snippets to
their types, e.g. `{"np.arange(n)": "array"}`. An array argument named
`params` is taken as type "params" when the types are inferred. Every
operator renders as plain numpy source that does not raise on any input
(division gives inf/nan, sqrt and log take the absolute value, exp is clipped),
so generated programs need no helper functions. The DEAP primitives are only
names and types: nothing here is ever called or compiled.
"""

from __future__ import annotations

import ast
import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from deap import gp

EXP_CLIP = 50.0  # np.exp(50) ~ 5e21: large but finite
LOG_EPS = 1e-09  # log(|x| + eps) is finite at 0
CONST_NAME = "#const"  # the ephemeral constant; '#' keeps it apart from argument names
NUM_PARAMS = 10  # LLM-SR's MAX_NPARAMS: terminals params[0] .. params[9]
MAX_NUM_PARAMS = 100  # the most a declaration's num_params may ask for
PARAMS_NAME = "params"  # an array argument of this name is a parameter vector (LLM-SR)


class _GPType(type):
    """A type tag with a fixed hash: DEAP's crossover draws from a set of types,
    and id-based hashes would make its order differ between processes."""

    _tag: int

    def __hash__(cls) -> int:
        return cls._tag

    def __eq__(cls, other: object) -> bool:
        return cls is other


class Scalar(metaclass=_GPType):
    """A Python or numpy scalar (float or int)."""

    _tag = 1


class Array(metaclass=_GPType):
    """A 1-d numpy array; broadcasts with scalars, keeps its shape."""

    _tag = 2


TYPES: dict[str, type] = {"scalar": Scalar, "array": Array}
_TYPE_ALIASES = {"scalar": "scalar", "float": "scalar", "int": "scalar",
                 "array": "array", "ndarray": "array", "np.ndarray": "array"}
_CODES: dict[type, str] = {Scalar: "s", Array: "a"}


@dataclass(frozen=True)
class Operator:
    """One operator: its arity kind and the numpy source it renders as."""

    name: str
    kind: str  # "binary" / "unary": elementwise; "reduce": array -> scalar
    template: str  # source with {0}, {1} placeholders


OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("add", "binary", "({0} + {1})"),
    Operator("sub", "binary", "({0} - {1})"),
    Operator("mul", "binary", "({0} * {1})"),
    Operator("div", "binary", "np.divide({0}, {1})"),
    Operator("minimum", "binary", "np.minimum({0}, {1})"),
    Operator("maximum", "binary", "np.maximum({0}, {1})"),
    Operator("neg", "unary", "(-{0})"),
    Operator("square", "unary", "np.square({0})"),
    Operator("sqrt", "unary", "np.sqrt(np.abs({0}))"),
    Operator("exp", "unary", f"np.exp(np.minimum({{0}}, {EXP_CLIP!r}))"),
    Operator("log", "unary", f"np.log(np.abs({{0}}) + {LOG_EPS!r})"),
    Operator("abs", "unary", "np.abs({0})"),
    Operator("tanh", "unary", "np.tanh({0})"),
    Operator("min", "reduce", "np.min({0})"),
    Operator("max", "reduce", "np.max({0})"),
    Operator("mean", "reduce", "np.mean({0})"),
    Operator("sum", "reduce", "np.sum({0})"),
    Operator("sin", "unary", "np.sin({0})"),
    Operator("cos", "unary", "np.cos({0})"),
    Operator("mod3", "unary", "np.mod({0}, 3.0)"),  # residues in Z_3 (cap sets); never nan for finite input
)}
OPT_IN_OPERATORS = frozenset({"sin", "cos", "mod3"})  # only where a declaration names them
# Used when a declaration names no operators (and for inferred signatures).
DEFAULT_OPERATORS: tuple[str, ...] = tuple(name for name in OPERATORS if name not in OPT_IN_OPERATORS)


@dataclass(frozen=True)
class Signature:
    """The typed interface of the evolved function and the grammar over it."""

    args: tuple[tuple[str, str], ...]  # (argument name, "scalar" | "array"), in call order
    returns: str  # "scalar" | "array"
    operators: tuple[str, ...]  # names from OPERATORS
    constants: tuple[float, float]  # range of ephemeral constants
    # extra leaves: (source snippet, "scalar" | "array"), e.g. ("params[0]", "scalar")
    terminals: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """Return a short identifier, e.g. `gp(item:scalar,bins:array->array; 15 ops; c[-2,2])`."""
        args = ",".join(f"{name}:{type_}" for name, type_ in self.args)
        lo, hi = self.constants
        extra = f"; {len(self.terminals)} terminals" if self.terminals else ""
        return f"gp({args}->{self.returns}; {len(self.operators)} ops; c[{lo:g},{hi:g}]{extra})"


def _type_name(value: object, what: str) -> str:
    if not isinstance(value, str) or value.lower() not in _TYPE_ALIASES:
        raise ValueError(f"GP declaration: {what} has type {value!r}; expected 'scalar' or 'array'")
    return _TYPE_ALIASES[value.lower()]


def signature_from_declaration(declaration: Mapping, fn: ast.FunctionDef,
                               default_constants: tuple[float, float]) -> Signature:
    """Validate a problem's declaration against the seed function; raise ValueError."""
    unknown = set(declaration) - {"args", "returns", "operators", "constants", "terminals", "num_params"}
    if unknown:
        raise ValueError(f"GP declaration: unknown keys {sorted(unknown)}")
    declared = declaration.get("args") or {}
    if not isinstance(declared, Mapping):
        raise ValueError(f"GP declaration: args must map names to types, got {declared!r}")
    params = [a.arg for a in fn.args.args]
    missing = [name for name in declared if name not in params]
    if missing:
        raise ValueError(f"GP declaration: {missing} are not arguments of {fn.name}{tuple(params)}")
    vectors = [name for name in params if name in declared and str(declared[name]).lower() == "params"]
    args = tuple((name, _type_name(declared[name], name)) for name in params
                 if name in declared and name not in vectors)
    num_params = declaration.get("num_params", NUM_PARAMS)
    if not isinstance(num_params, int) or isinstance(num_params, bool) or not 1 <= num_params <= MAX_NUM_PARAMS:
        raise ValueError(f"GP declaration: num_params must be an int in [1, {MAX_NUM_PARAMS}], got {num_params!r}")
    terminals = [(f"{name}[{i}]", "scalar") for name in vectors for i in range(num_params)]
    terminals += _declared_terminals(declaration.get("terminals") or {})
    returns = _type_name(declaration.get("returns"), "the return value")
    operators = tuple(declaration.get("operators") or DEFAULT_OPERATORS)
    bad = [op for op in operators if op not in OPERATORS]
    if bad:
        raise ValueError(f"GP declaration: unknown operators {bad}; known: {list(OPERATORS)}")
    constants = tuple(float(c) for c in declaration.get("constants") or default_constants)
    if len(constants) != 2 or not constants[0] <= constants[1]:
        raise ValueError(f"GP declaration: constants must be [low, high], got {constants}")
    sig = Signature(args, returns, tuple(dict.fromkeys(operators)), constants,
                    tuple(dict.fromkeys(terminals)))
    build_pset(sig)  # raises ValueError when the grammar cannot build every type
    return sig


def _declared_terminals(declared: object) -> list[tuple[str, str]]:
    """Validate the "terminals" mapping: Python expressions to types."""
    if not isinstance(declared, Mapping):
        raise ValueError(f"GP declaration: terminals must map source snippets to types, got {declared!r}")
    out = []
    for source, type_ in declared.items():
        try:
            text = ast.unparse(ast.parse(str(source), mode="eval"))
        except SyntaxError:
            raise ValueError(f"GP declaration: terminal {source!r} is not a Python expression") from None
        out.append((text, _type_name(type_, f"terminal {source!r}")))
    return out


def annotation_type(node: ast.expr | None) -> str | None:
    """Map an annotation to "scalar" / "array", or None when it is neither."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "np.ndarray"
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.Subscript):  # npt.NDArray[np.float64], np.ndarray[...]
        inner = annotation_type(node.value)
        return "array" if inner == "array" else None
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    if isinstance(node, ast.Attribute) and not (
            isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy", "npt")):
        return None
    if name in ("float", "int", "float64", "float32", "int64", "int32"):
        return "scalar"
    if name in ("ndarray", "NDArray"):
        return "array"
    return None


def infer_signature(fn: ast.FunctionDef, constants: tuple[float, float]) -> Signature | None:
    """Infer the signature from annotations; None when any type is missing or unsupported."""
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        return None
    args = tuple((arg.arg, annotation_type(arg.annotation)) for arg in a.args)
    returns = annotation_type(fn.returns)
    if returns is None or any(t is None for _, t in args):
        return None
    # LLM-SR's convention: `params: np.ndarray` holds the constants the evaluator fits.
    terminals = tuple((f"{PARAMS_NAME}[{i}]", "scalar") for name, t in args
                      if name == PARAMS_NAME and t == "array" for i in range(NUM_PARAMS))
    args = tuple((name, t) for name, t in args if not (terminals and name == PARAMS_NAME))
    sig = Signature(args, returns, DEFAULT_OPERATORS, constants, terminals)  # type: ignore[arg-type]
    try:
        build_pset(sig)
    except ValueError:  # e.g. an array return with no array argument
        return None
    return sig


def random_constant(low: float, high: float) -> float:
    """Draw an ephemeral constant from DEAP's stream (the global `random`)."""
    return round(random.uniform(low, high), 3)


def _never_called(*_args: object) -> None:
    raise AssertionError("GP primitives are rendered to source, never called")


def primitive_name(op: str, arg_types: tuple[type, ...]) -> str:
    """Name the typed variant of `op`, e.g. add over (Array, Scalar) -> "add_as"."""
    return op + "_" + "".join(_CODES[t] for t in arg_types)


def operator_of(prim: gp.Primitive) -> Operator:
    """Return the operator a typed primitive renders as."""
    return OPERATORS[prim.name.rsplit("_", 1)[0]]


def build_pset(sig: Signature) -> gp.PrimitiveSetTyped:
    """Build the typed primitive set with every mixed-type variant of each operator."""
    pset = gp.PrimitiveSetTyped("MAIN", [TYPES[t] for _, t in sig.args], TYPES[sig.returns])
    pset.renameArguments(**{f"ARG{i}": name for i, (name, _) in enumerate(sig.args)})
    kinds = [Scalar, Array] if any(t == "array" for _, t in sig.args + sig.terminals) else [Scalar]
    for source, type_ in sig.terminals:  # rendered as their source text, like arguments
        if source in pset.mapping:
            raise ValueError(f"GP declaration: terminal {source!r} clashes with an argument")
        pset.addTerminal(source, TYPES[type_], name=source)
    for op in (OPERATORS[name] for name in sig.operators):
        variants: list[tuple[type, ...]]
        if op.kind == "binary":
            variants = [(a, b) for a in kinds for b in kinds]
        elif op.kind == "unary":
            variants = [(a,) for a in kinds]
        else:
            variants = [(Array,)] if Array in kinds else []
        for ins in variants:
            ret = Array if Array in ins and op.kind != "reduce" else Scalar
            pset.addPrimitive(_never_called, list(ins), ret, name=primitive_name(op.name, ins))
    pset.addEphemeralConstant(CONST_NAME, functools.partial(random_constant, *sig.constants), Scalar)
    if TYPES[sig.returns] not in kinds:
        raise ValueError(f"GP declaration: returns {sig.returns} but no argument is an array")
    for t in kinds:
        if not pset.primitives[t]:
            raise ValueError(f"GP declaration: no operator produces a {t.__name__.lower()}")
    return pset
