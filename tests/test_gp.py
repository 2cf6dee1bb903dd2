"""Tests of the GP proposer: .venv/bin/pytest tests/test_gp.py

The code under test never runs candidates; these tests do (with numpy, on fixed
inputs) to check that what it writes means what it should.
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest

from evolve.proposers.base import Prompt
from evolve.proposers.gp import GPConfig, GPProposer
from evolve.proposers.gp.convert import expr_to_tree, find_function, function_to_tree, tree_to_expr
from evolve.proposers.gp.mutate_ast import crossover_functions, mutate_function
from evolve.proposers.gp.primitives import build_pset, infer_signature, signature_from_declaration

BEST_FIT = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)
'''
# FunSearch's evolved OR heuristic (Romera-Paredes et al. 2023): not one expression
FUNSEARCH_OR = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
  """Returns priority with which we want to add item to each bin."""
  score = 1000 * np.ones(bins.shape)
  # Penalize bins with large capacities.
  score -= bins * (bins - item)
  index = np.argmin(bins)
  score[index] *= item
  score[index] -= (bins[index] - item)**4
  return score
'''
CAP_SET_SEED = '''def priority(el: tuple[int, ...], n: int) -> float:
  """Returns the priority with which we want to add `element` to the cap set."""
  return 0.0
'''
CAP_SET_EVOLVED = '''def priority(el: tuple[int, ...], n: int) -> float:
  score = n
  el_count = el.count(0)
  if el_count == 0:
    score += n ** 2
    if el[1] == el[-1]:
      score *= 1.5
  elif el_count < 3:
    score -= 0.5 * el_count
  return score
'''
BIN_PACKING = {
    "args": {"item": "scalar", "bins": "array"}, "returns": "array",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "sqrt", "exp", "log", "abs",
                  "minimum", "maximum", "min", "max", "mean"],
    "constants": [-2.0, 2.0],
}
ITEM = 23.0
BINS = np.array([100.0, 77.0, 40.5, 23.0, 24.0, 61.0])


def prompt(*functions: str) -> Prompt:
    k = len(functions)
    return Prompt(island=0, parent_ids=tuple(range(k)), functions=functions,
                  scores=tuple(float(i) for i in range(k)), function_name="priority")


def run(source: str, *args: object) -> object:
    namespace: dict = {"np": np}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(source, namespace)  # the test, not the proposer, runs candidates
        return namespace["priority"](*args)


def bin_packing_set():
    fn = find_function(BEST_FIT)
    sig = signature_from_declaration(BIN_PACKING, fn, (-2.0, 2.0))
    return sig, build_pset(sig)


@pytest.mark.parametrize("expr", [
    "-(bins - item)",
    "bins / item + 2 * bins",
    "bins ** 2 - np.sqrt(bins) * 0.5",
    "np.exp(-bins / 100.0) * np.log(bins)",
    "np.minimum(bins, item) - np.maximum(bins, np.mean(bins))",
    "np.divide(bins, np.max(bins)) - np.min(bins) / item",
    "np.sqrt(np.abs(bins - item)) + np.log(np.abs(item) + 1e-09)",
    "np.exp(np.minimum(item - bins, 50.0)) + np.square(-1.5 + item)",
    "abs(item - bins) * -(-0.25)",
])
def test_round_trip_preserves_meaning(expr: str) -> None:
    sig, pset = bin_packing_set()
    tree = expr_to_tree(ast.parse(expr, mode="eval").body, pset, sig)
    rendered = tree_to_expr(tree)
    env = {"np": np, "item": ITEM, "bins": BINS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(eval(rendered, env), eval(expr, env), rtol=1e-9)  # log adds 1e-09
    again = expr_to_tree(ast.parse(rendered, mode="eval").body, pset, sig)
    assert tree_to_expr(again) == rendered  # rendering is a fixed point


@pytest.mark.parametrize("expr", ["item * 2", "bins[0] + item", "np.where(bins > item, bins, 0)",
                                  "bins ** 3", "np.cumsum(bins)"])
def test_expressions_outside_the_grammar_do_not_convert(expr: str) -> None:
    fn = find_function(f"def priority(item, bins):\n    return {expr}\n")
    assert function_to_tree(fn, *reversed(bin_packing_set())) is None


def test_best_fit_parses_into_a_tree() -> None:
    sig, pset = bin_packing_set()
    tree = function_to_tree(find_function(BEST_FIT, "priority"), pset, sig)
    assert str(tree) == "neg_a(sub_as(bins, item))"


def test_signature_is_inferred_from_annotations() -> None:
    proposer = GPProposer(None, BEST_FIT, np.random.default_rng(0))
    assert proposer.signature.args == (("item", "scalar"), ("bins", "array"))
    assert proposer.signature.returns == "array"
    assert proposer.model.startswith("gp(item:scalar,bins:array->array")


@pytest.mark.parametrize("declaration, message", [
    ({**BIN_PACKING, "operators": ["add", "cosh"]}, "unknown operators"),
    ({**BIN_PACKING, "args": {"items": "array"}}, "not arguments"),
    ({**BIN_PACKING, "returns": "tuple"}, "expected 'scalar' or 'array'"),
    ({"args": {"item": "scalar"}, "returns": "array"}, "no argument is an array"),
])
def test_bad_declarations_are_rejected(declaration: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPProposer(declaration, BEST_FIT, np.random.default_rng(0))


def test_bin_packing_outputs_run_and_return_arrays() -> None:
    proposer = GPProposer(BIN_PACKING, BEST_FIT, np.random.default_rng(1))
    parents = prompt("def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
                     "    return bins - 2.0 * item\n", BEST_FIT)
    outputs = proposer.write([parents], 300)[0]
    assert len(outputs) == 300
    assert len(set(outputs)) > 250  # few repeats
    good = 0
    for source in outputs:
        fn = find_function(source, "priority")
        assert fn is not None and [a.arg for a in fn.args.args] == ["item", "bins"]
        try:
            result = run(source, ITEM, BINS)
        except Exception:  # noqa: BLE001 - counting failures is the point
            continue
        good += isinstance(result, np.ndarray) and result.shape == BINS.shape \
            and bool(np.all(np.isfinite(result)))
    assert good >= 0.9 * len(outputs)


def test_multi_statement_parent_gets_ast_mutations() -> None:
    proposer = GPProposer(BIN_PACKING, BEST_FIT, np.random.default_rng(2))
    outputs = proposer.write([prompt(FUNSEARCH_OR)], 50)[0]
    parent = ast.unparse(find_function(FUNSEARCH_OR))
    assert all(out != parent for out in outputs)
    assert len(set(outputs)) >= 45
    edited = [out for out in outputs if len(find_function(out, "priority").body) > 2]
    assert len(edited) >= 40  # the rest are fresh random trees (GPConfig.fresh_prob)
    ran = sum(isinstance(_safe_run(out), np.ndarray) for out in outputs)
    assert ran >= 40


def _safe_run(source: str) -> object:
    try:
        return run(source, ITEM, BINS.copy())
    except Exception:  # noqa: BLE001
        return None


def test_ast_mutations_swap_operators_and_functions() -> None:
    fn = find_function("def f(x, y):\n    if x < y:\n        return np.exp(x) + np.minimum(x, y)\n"
                       "    return max(x, y) * 2.5\n")
    rng = random.Random(0)
    seen = {ast.unparse(mutate_function(fn, rng)) for _ in range(200)}
    joined = "\n".join(seen)
    for fragment in ("x > y", "x <= y", "np.exp(x) - ", "np.maximum(x, y)", "min(x, y)",
                     "np.log(x)", "/ 2.5"):
        assert fragment in joined, fragment
    assert ast.unparse(fn) not in seen


def test_ast_crossover_grafts_only_defined_names() -> None:
    recipient = find_function(FUNSEARCH_OR)
    donor = find_function("def priority(item, bins):\n    waste = bins - item\n"
                          "    return np.exp(-np.abs(bins - item)) * waste\n")
    rng = random.Random(3)
    children = [crossover_functions(recipient, donor, rng) for _ in range(30)]
    assert any(c is not None and "np.exp(-np.abs(bins - item))" in ast.unparse(c) for c in children)
    assert all("waste" not in ast.unparse(c) for c in children if c is not None)


def test_same_seed_same_outputs_different_seed_different_outputs() -> None:
    def outputs(seed: int) -> list[list[str]]:
        proposer = GPProposer(BIN_PACKING, BEST_FIT, np.random.default_rng(seed))
        prompts = [prompt(BEST_FIT), prompt(FUNSEARCH_OR, BEST_FIT)]
        return proposer.write(prompts, 20) + proposer.write(prompts, 20)

    state = random.getstate()
    assert outputs(5) == outputs(5)
    assert outputs(5) != outputs(6)
    assert random.getstate() == state  # DEAP's global stream is restored


_DETERMINISM_SCRIPT = """
import numpy as np
from evolve.proposers.base import Prompt
from evolve.proposers.gp import GPProposer
seed = "def priority(item: float, bins: np.ndarray) -> np.ndarray:\\n    return -(bins - item)\\n"
other = seed.replace("-(bins - item)", "np.mean(bins) / item - bins")
p = GPProposer(None, seed, np.random.default_rng(9))
print(p.write([Prompt(0, (0, 1), (seed, other), (0.0, 1.0), "priority")], 60))
"""


def test_outputs_do_not_depend_on_the_hash_seed() -> None:
    def outputs(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, check=True,
                              capture_output=True, text=True, cwd=root).stdout

    assert outputs("1") == outputs("2")


def test_no_parseable_parent_still_yields_n_fresh_programs() -> None:
    proposer = GPProposer(BIN_PACKING, BEST_FIT, np.random.default_rng(4))
    outputs = proposer.write([prompt("def priority(item, bins):\n  return (", "")], 12)[0]
    assert len(outputs) == 12
    for out in outputs:
        assert find_function(out, "priority") is not None
        assert run(out, ITEM, BINS).shape == BINS.shape


def test_cap_set_types_fall_back_to_ast_mutation() -> None:
    proposer = GPProposer(None, CAP_SET_SEED, np.random.default_rng(5))
    assert proposer.signature is None and proposer.model == "ast-mutation"
    assert infer_signature(find_function(CAP_SET_SEED), (-1.0, 1.0)) is None
    for parents in (prompt(CAP_SET_SEED), prompt(CAP_SET_SEED, CAP_SET_EVOLVED), prompt("oops(")):
        outputs = proposer.write([parents], 20)[0]
        assert len(outputs) == 20
        for out in outputs:
            fn = find_function(out, "priority")
            assert ast.unparse(fn.args) == "el: tuple[int, ...], n: int"
            assert out not in [ast.unparse(f) for p in parents.functions if (f := find_function(p))]
            assert isinstance(run(out, (0, 1, 2, 1), 4), (int, float))


@pytest.mark.parametrize("max_height", [4, 12])
def test_size_limits_hold_over_generations(max_height: int) -> None:
    config = GPConfig(max_height=max_height, max_nodes=40, init_max_height=min(4, max_height))
    proposer = GPProposer(BIN_PACKING, BEST_FIT, np.random.default_rng(6), config)
    sig, pset = proposer.signature, build_pset(proposer.signature)
    population = [BEST_FIT, "def priority(item, bins):\n    return np.exp(bins) * item - bins\n"]
    rng = np.random.default_rng(0)
    for _ in range(40):
        children = proposer.write([prompt(*population)], 8)[0]
        for child in children:
            tree = function_to_tree(find_function(child, "priority"), pset, sig)
            assert tree is not None, child  # GP children stay inside the grammar
            assert tree.height <= max_height and len(tree) <= 40
        picks = rng.choice(len(children), size=2, replace=False)
        population = [children[i] for i in picks]


# -- leaves beyond the arguments: parameter vectors (LLM-SR) and declared terminals ----------

LLMSR_SEED = '''def equation(x: np.ndarray, v: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Acceleration."""
    return params[0] * x + params[1] * v + params[3]
'''


def test_params_argument_becomes_scalar_terminals() -> None:
    for declaration in (None, {"args": {"x": "array", "v": "array", "params": "params"}, "returns": "array"}):
        proposer = GPProposer(declaration, LLMSR_SEED, np.random.default_rng(0))
        sig = proposer.signature
        assert [name for name, _ in sig.args] == ["x", "v"]
        assert [s for s, _ in sig.terminals] == [f"params[{i}]" for i in range(10)]
        assert proposer._seed.tree is not None  # the seed is a tree: params[i] are leaves
        x, v, params = np.linspace(-1, 1, 7), np.linspace(2, 3, 7), np.arange(1.0, 11.0)
        fresh = [p for p in proposer.write([Prompt(0, (1,), (LLMSR_SEED,), (0.0,), "equation")], 30)[0]]
        assert any("params[" in out for out in fresh)
        for out in fresh:
            namespace: dict = {"np": np}
            exec(out, namespace)
            with np.errstate(all="ignore"):
                y = np.asarray(namespace["equation"](x, v, params))
            assert y.shape in ((), x.shape), out
            # every index stays inside the vector of 10 constants
            indices = [n.slice.value for n in ast.walk(ast.parse(out)) if isinstance(n, ast.Subscript)]
            assert all(isinstance(i, int) and 0 <= i < 10 for i in indices), out


def test_declared_terminals_and_opt_in_operators_round_trip() -> None:
    seed = "def priority(el: np.ndarray, n: int) -> float:\n    return np.sum(np.mod(el * np.arange(n), 3.0))\n"
    declaration = {"args": {"el": "array", "n": "scalar"}, "returns": "scalar",
                   "operators": ["add", "mul", "sum", "mod3", "sin"], "terminals": {"np.arange(n)": "array"}}
    fn = find_function(seed)
    sig = signature_from_declaration(declaration, fn, (-1.0, 1.0))
    tree = function_to_tree(fn, build_pset(sig), sig)
    assert tree is not None
    assert tree_to_expr(tree) == "np.sum(np.mod(el * np.arange(n), 3.0))"
    assert "mod3" not in infer_signature(find_function(BEST_FIT), (-1.0, 1.0)).operators  # opt-in only


@pytest.mark.parametrize(("declaration", "message"), [
    ({"args": {"x": "array"}, "returns": "array", "terminals": {"x[": "array"}}, "not a Python expression"),
    ({"args": {"x": "array"}, "returns": "array", "terminals": {"x": "array"}}, "clashes"),
    ({"args": {"x": "array", "params": "params"}, "returns": "array", "num_params": 0}, "num_params"),
])
def test_bad_terminal_declarations_are_rejected(declaration: dict, message: str) -> None:
    fn = find_function("def f(x, params):\n    return x\n")
    with pytest.raises(ValueError, match=message):
        signature_from_declaration(declaration, fn, (-1.0, 1.0))
