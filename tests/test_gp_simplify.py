"""GP trees are simplified before they are rendered: .venv/bin/pytest tests/test_gp_simplify.py

Every rule must keep the value for every input, bit for bit, signed zeros,
inf and nan included; the tests evaluate both forms with numpy on inputs
that hold such values.
"""

from __future__ import annotations

import ast
import random
import warnings

import numpy as np
import pytest
from deap import gp

from evolve.proposers.gp.convert import expr_to_tree, find_function, tree_to_expr
from evolve.proposers.gp.primitives import build_pset, signature_from_declaration
from evolve.proposers.gp.simplify import simplify

DECLARATION = {
    "args": {"item": "scalar", "bins": "array"}, "returns": "array",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "sqrt", "exp", "log", "abs",
                  "minimum", "maximum", "min", "max", "mean"],
    "constants": [-2.0, 2.0],
}
SEED = "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    return -(bins - item)\n"
# Awkward values: signed zeros, infinities, nan, tiny and huge numbers, the item itself.
BINS = np.array([100.0, 0.0, -0.0, 23.0, -7.5, np.inf, -np.inf, np.nan, 1e-300, 1e300])
ITEMS = (23.0, 0.0, -0.0, -1.5)


def pset_and_sig():
    sig = signature_from_declaration(DECLARATION, find_function(SEED), (-2.0, 2.0))
    return build_pset(sig), sig


def values(expr: str) -> list[np.ndarray]:
    out = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for item in ITEMS:
            out.append(np.broadcast_to(eval(expr, {"np": np, "item": item, "bins": BINS.copy()}), BINS.shape))
    return out


def assert_same_values(a: str, b: str) -> None:
    for x, y in zip(values(a), values(b)):
        np.testing.assert_array_equal(x, y, strict=True)  # nan == nan here; the sign of zero is checked below
        numbers = ~np.isnan(x)  # a nan's sign bit means nothing
        assert np.array_equal(np.signbit(x[numbers]), np.signbit(y[numbers])), (a, b)


@pytest.mark.parametrize(("expr", "simplified"), [
    ("-(-(bins - item))", "bins - item"),
    ("bins - (-item)", "bins + item"),
    ("bins + (-item)", "bins - item"),
    ("bins - -1.34", "bins + 1.34"),
    ("bins + -2.0 * 1.5", "bins - 3.0"),  # folded first, then the sign moves onto the operator
    ("bins - 0.0", "bins - 0.0"),  # a zero is left as it is
    ("(-bins) * (-item)", "bins * item"),
    ("np.divide(-bins, -item)", "np.divide(bins, item)"),
    ("np.square(-bins) + np.square(np.abs(item))", "np.square(bins) + np.square(item)"),
    ("np.abs(np.abs(-bins))", "np.abs(bins)"),
    ("np.minimum(np.minimum(bins - item, item), item)", "np.minimum(bins - item, item)"),
    ("np.maximum(bins, np.maximum(item, bins))", "np.maximum(item, bins)"),
    ("np.minimum(bins, bins)", "bins"),
    ("bins * np.square(-1.98)", f"bins * {float(np.square(-1.98))!r}"),
    ("bins + np.divide(2.513, 1.883 * (-2.0))", f"bins - {-float(np.divide(2.513, 1.883 * -2.0))!r}"),
    ("bins - np.divide(1.0, 0.0)", "bins - np.divide(1.0, 0.0)"),  # inf is not folded
    ("np.minimum(bins, item)", "np.minimum(bins, item)"),  # nothing to do
    ("-(bins - item)", "-(bins - item)"),  # not item - bins: at bins = item that is +0, this is -0
])
def test_rules_keep_every_value(expr: str, simplified: str) -> None:
    pset, sig = pset_and_sig()
    tree = expr_to_tree(ast.parse(expr, mode="eval").body, pset, sig)
    out = tree_to_expr(simplify(tree, pset))
    assert out == ast.unparse(ast.parse(simplified, mode="eval"))
    assert_same_values(tree_to_expr(tree), out)


def test_random_trees_keep_their_values_and_never_grow() -> None:
    """GP's own trees, as its mutations grow them: the simplified form is never longer and means the same."""
    pset, _ = pset_and_sig()
    random.seed(3)
    shrunk = 0
    for _ in range(300):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 2, 6))
        small = simplify(tree, pset)
        assert len(small) <= len(tree)
        shrunk += len(small) < len(tree)
        assert_same_values(tree_to_expr(tree), tree_to_expr(small))
        assert simplify(small, pset) == small  # a fixed point
    assert shrunk > 10  # random trees do carry dead weight


def test_the_proposer_writes_only_simplified_programs() -> None:
    """Children of a bloated parent come out simplified: each is a fixed point, none keeps its dead weight."""
    from evolve.proposers.base import Prompt
    from evolve.proposers.gp import GPProposer
    from evolve.proposers.gp.convert import function_to_tree

    parent = ("def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
              "    return -(-np.minimum(np.minimum(bins - item, item), item)) * np.square(-1.98)\n")
    proposer = GPProposer(DECLARATION, SEED, np.random.default_rng(0))
    prompt = Prompt(island=0, parent_ids=(0,), functions=(parent,), scores=(0.0,), function_name="priority")
    children = proposer.write([prompt], 100)[0]
    pset, sig = pset_and_sig()
    trees = [function_to_tree(find_function(child), pset, sig) for child in children]
    assert sum(t is not None for t in trees) > 50
    for child, tree in zip(children, trees):
        if tree is not None:
            assert simplify(tree, pset) == tree, child
            assert "np.square(-1.98)" not in child and "--" not in child
