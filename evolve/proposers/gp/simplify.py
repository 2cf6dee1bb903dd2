"""Algebraic simplification of GP trees, before a child is rendered, scored and archived.

    tree = simplify(tree, pset)

GP grows dead weight that dedupe cannot see through: `-(-x)`,
`np.square(-1.98)`, `np.minimum(np.minimum(a, b), b)`. Each rule here gives
the same value as the tree it replaces for every input, signed zeros, inf
and nan included (IEEE negation is exact, and a - b is a + (-b) exactly):

- constant folding: an operator over constants becomes one constant (only
  when the result is finite);
- double negation: -(-x) -> x; x - (-y) -> x + y; x + (-y) -> x - y;
  x - (-c) -> x + c and x + (-c) -> x - c for a negative constant -c;
  (-x) * (-y) -> x * y; np.divide(-x, -y) -> np.divide(x, y);
- even functions: np.square(-x), np.square(np.abs(x)) -> np.square(x);
  np.abs(-x), np.abs(np.abs(x)) -> np.abs(x);
- idempotence: np.minimum(np.minimum(a, b), b) -> np.minimum(a, b), and
  the same with the repeated operand anywhere, and for np.maximum;
  np.minimum(x, x) -> x.

A folded constant is a Python float, so numpy promotes it as a weak scalar
where `np.square(-1.98)` was a float64 one: with float32 arrays the child may
round differently from its unsimplified form. What is archived is the
simplified program, and that is what was scored.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from deap import gp

from evolve.proposers.gp.convert import make_constant
from evolve.proposers.gp.primitives import operator_of, primitive_name


@dataclass
class _Node:
    node: object  # a gp.Primitive or a terminal
    children: list[_Node] = field(default_factory=list)

    @property
    def op(self) -> str | None:
        return operator_of(self.node).name if isinstance(self.node, gp.Primitive) else None

    @property
    def constant(self) -> float | None:
        return float(self.node.value) if isinstance(type(self.node), gp.MetaEphemeral) else None  # type: ignore[attr-defined]

    def same(self, other: _Node) -> bool:
        return self.flatten() == other.flatten()

    def flatten(self) -> list:
        out = [self.node]
        for child in self.children:
            out += child.flatten()
        return out


def _nest(tree: gp.PrimitiveTree, i: int = 0) -> tuple[_Node, int]:
    node = tree[i]
    out, j = _Node(node), i + 1
    if isinstance(node, gp.Primitive):
        for _ in range(node.arity):
            child, j = _nest(tree, j)
            out.children.append(child)
    return out, j


def simplify(tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped) -> gp.PrimitiveTree:
    """Return the tree with the rules above applied bottom-up until none applies."""
    root, end = _nest(tree)
    assert end == len(tree), "a tree is one complete prefix expression"
    return gp.PrimitiveTree(_Simplifier(pset).visit(root).flatten())


class _Simplifier:
    def __init__(self, pset: gp.PrimitiveSetTyped) -> None:
        self.pset = pset
        self.by_name = {p.name: p for prims in pset.primitives.values() for p in prims}

    def primitive(self, op: str, children: list[_Node]) -> gp.Primitive | None:
        """The typed primitive `op` over these children's types, if the primitive set has it."""
        return self.by_name.get(primitive_name(op, tuple(self.type_of(c) for c in children)))

    @staticmethod
    def type_of(node: _Node) -> type:
        return node.node.ret  # type: ignore[attr-defined]  # primitives and terminals alike

    def visit(self, node: _Node) -> _Node:
        node.children = [self.visit(c) for c in node.children]
        while True:
            new = self.rewrite(node)
            if new is None:
                return node
            node = new

    def make(self, op: str, children: list[_Node]) -> _Node | None:
        prim = self.primitive(op, children)
        return None if prim is None else _Node(prim, children)

    def rewrite(self, node: _Node) -> _Node | None:  # noqa: C901 - one rule per branch
        op, kids = node.op, node.children
        if op is None:
            return None
        if kids and all(k.constant is not None for k in kids) and operator_of(node.node).kind != "reduce":
            return self.fold(node)
        if op == "neg":
            (x,) = kids
            if x.op == "neg":
                return x.children[0]
        elif op in ("sub", "add") and (positive := self.negated(kids[1])) is not None:
            return self.make("add" if op == "sub" else "sub", [kids[0], positive])
        elif op in ("mul", "div") and kids[0].op == "neg" and kids[1].op == "neg":
            return self.make(op, [kids[0].children[0], kids[1].children[0]])
        elif op in ("square", "abs") and kids[0].op in ("neg", "abs"):
            return self.make(op, [kids[0].children[0]])
        elif op in ("minimum", "maximum"):
            a, b = kids
            if a.same(b) and self.type_of(a) == self.type_of(node):
                return a
            for inner, other in ((a, b), (b, a)):
                if inner.op == op and any(c.same(other) for c in inner.children) \
                        and self.type_of(inner) == self.type_of(node):
                    return inner
        return None

    def negated(self, node: _Node) -> _Node | None:
        """x for -x, and c for a negative constant -c (bins - -1.34 -> bins + 1.34); None for anything else."""
        if node.op == "neg":
            return node.children[0]
        c = node.constant
        return _Node(make_constant(self.pset, -c)) if c is not None and c < 0 else None

    def fold(self, node: _Node) -> _Node | None:
        values = [repr(k.constant) for k in node.children]
        source = operator_of(node.node).template.format(*(f"({v})" for v in values))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            value = float(eval(source, {"np": np, "__builtins__": {}}))  # our own template over float literals
        if not math.isfinite(value):
            return None
        return _Node(make_constant(self.pset, value))

