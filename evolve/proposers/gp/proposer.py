"""The genetic-programming proposer: typed DEAP GP plus AST mutation, no model.

    proposer = GPProposer(declaration, seed_source, np.random.default_rng(0))
    batches = proposer.propose(prompts, n=8)  # per prompt, 8 candidate sources

Parents whose body is one `return <expr>` over the primitive set become DEAP
trees (crossover, mutation, bloat limits); any other parent is edited at the
AST level. Candidates are source text only: nothing is compiled or run here.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import logging
import operator
import random
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from deap import base, gp

from evolve.proposers.base import Prompt, TextProposer
from evolve.proposers.gp.convert import (
    find_function, function_to_tree, make_constant, render_function, tree_to_expr,
)
from evolve.proposers.gp.mutate_ast import crossover_functions, mutate_function, perturb_value, size
from evolve.proposers.gp.primitives import (
    Signature, build_pset, infer_signature, signature_from_declaration,
)
from evolve.proposers.gp.semantic import Probe, Seen
from evolve.proposers.gp.simplify import simplify

logger = logging.getLogger(__name__)

# DEAP draws from the global `random` module; this lock keeps two proposers in
# one process from interleaving their seeded streams.
_GLOBAL_RANDOM_LOCK = threading.Lock()
TREE_MUTATIONS = ("uniform", "node_replacement", "ephemeral", "constant", "shrink", "insert")


@dataclass(frozen=True)
class GPConfig:
    """Configuration of the GP proposer; every probability lies in [0, 1]."""

    crossover_prob: float = 0.5  # a tree child comes from gp.cxOnePoint with another tree parent
    mutation_after_crossover_prob: float = 0.5  # a crossover child is also mutated
    # Relative weights of the tree mutations (normalized): gp.mutUniform (a new
    # genFull/genGrow subtree), gp.mutNodeReplacement, gp.mutEphemeral (resample one
    # constant), Gaussian/log-normal perturbation of one constant, gp.mutShrink, gp.mutInsert.
    uniform_weight: float = 3.0
    node_replacement_weight: float = 2.0
    ephemeral_weight: float = 1.0
    constant_weight: float = 2.0
    shrink_weight: float = 1.0
    insert_weight: float = 1.0
    max_height: int = 12  # gp.staticLimit on tree height (the root alone is height 0)
    max_nodes: int = 64  # gp.staticLimit on node count
    init_min_height: int = 1  # fresh trees: gp.genHalfAndHalf heights
    init_max_height: int = 4
    subtree_min_height: int = 0  # gp.mutUniform subtrees and "wrap the return" terms
    subtree_max_height: int = 2
    fresh_prob: float = 0.05  # a child is a fresh random tree (when the types are known)
    constant_range: tuple[float, float] = (-2.0, 2.0)  # when the declaration gives none
    constant_sigma: float = 0.3  # log-normal sigma / additive sd of constant perturbations
    ast_crossover_prob: float = 0.2  # an AST child grafts an expression from another parent
    ast_max_mutations: int = 2  # an AST child gets 1..this many edits
    max_ast_nodes: int = 1500  # AST children larger than this are not wrapped or grafted
    max_retries: int = 8  # attempts per child to avoid repeating a parent or sibling
    # Expression children whose outputs on a fixed probe set equal those of a program this proposer wrote
    # before (or of a parent) count as repeats too: semantic dedupe (evolve/proposers/gp/semantic.py).
    semantic_dedupe: bool = True

    def __post_init__(self) -> None:
        for name in ("crossover_prob", "mutation_after_crossover_prob", "fresh_prob",
                     "ast_crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GPConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        weights = self.mutation_weights()
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"GPConfig: mutation weights must be >= 0 with a positive sum: {weights}")
        if not 0 <= self.init_min_height <= self.init_max_height <= self.max_height:
            raise ValueError("GPConfig: need 0 <= init_min_height <= init_max_height <= max_height")
        if not 0 <= self.subtree_min_height <= self.subtree_max_height:
            raise ValueError("GPConfig: need 0 <= subtree_min_height <= subtree_max_height")
        lo, hi = self.constant_range
        if not lo <= hi:
            raise ValueError(f"GPConfig.constant_range must be (low, high), got {self.constant_range}")
        for name in ("max_nodes", "ast_max_mutations", "max_ast_nodes", "max_retries"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.constant_sigma < 0:
            raise ValueError(f"GPConfig.constant_sigma must be >= 0, got {self.constant_sigma}")

    def mutation_weights(self) -> tuple[float, ...]:
        """Return the tree-mutation weights in TREE_MUTATIONS order."""
        return tuple(getattr(self, f"{name}_weight") for name in TREE_MUTATIONS)


@dataclass(frozen=True)
class _Parent:
    """A parsed parent; never modified (children are built from copies)."""

    fn: ast.FunctionDef
    tree: gp.PrimitiveTree | None  # None: edited at the AST level
    forms: frozenset[str] = frozenset()  # its source as written and as the GP would render it: not a new child
    key: bytes | None = None  # its semantic fingerprint (expression parents with a probe)


PARSED_CACHE = 4096  # parents kept parsed: islands' best programs come back in prompt after prompt


@contextlib.contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    """Seed the global `random` (DEAP's source) and restore its state afterwards."""
    with _GLOBAL_RANDOM_LOCK:
        state = random.getstate()
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


def _subtree(pset: gp.PrimitiveSetTyped, type_: type, min_: int, max_: int) -> list:
    generate = gp.genFull if random.random() < 0.5 else gp.genGrow
    return generate(pset, min_, max_, type_)


def _mut_constant(tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, rng: random.Random,
                  sigma: float) -> tuple[gp.PrimitiveTree]:
    """Perturb one ephemeral constant (multiplicative log-normal or additive)."""
    idx = [i for i, node in enumerate(tree) if isinstance(type(node), gp.MetaEphemeral)]
    if idx:
        i = random.choice(idx)
        tree[i] = make_constant(pset, perturb_value(tree[i].value, rng, sigma))
    return (tree,)


class GPProposer(TextProposer):
    """Propose new versions of the evolved function by typed GP and AST mutation.

    `declaration` is the problem's primitive-set mapping (see primitives.py) or
    None to infer scalar/array types from `seed_function`'s annotations; when
    they cannot be inferred, only AST-level edits are used. `rng` is drawn once
    per `write` call, so equal rng states and prompts give equal outputs.
    """

    name = "gp"

    def __init__(self, declaration: Mapping | None, seed_function: str,
                 rng: np.random.Generator, config: GPConfig = GPConfig()) -> None:
        seed_fn = find_function(seed_function)
        if seed_fn is None:
            raise ValueError("GPProposer: seed_function must be the source of one def")
        self.config = config
        self.signature: Signature | None = (
            signature_from_declaration(declaration, seed_fn, config.constant_range)
            if declaration is not None else infer_signature(seed_fn, config.constant_range))
        self.model = self.signature.describe() if self.signature else "ast-mutation"
        self._pset = build_pset(self.signature) if self.signature else None
        self._parsed: OrderedDict[tuple[str, str], _Parent | None] = OrderedDict()
        self._probe = Probe.for_signature(self.signature) if self.signature and config.semantic_dedupe else None
        self._seen = Seen()  # fingerprints of the children proposed so far
        self.semantic_repeats = 0  # children drawn again because they repeated a known program's outputs
        self._seed = self._parse(ast.unparse(seed_fn), seed_fn.name) or _Parent(seed_fn, None)
        self._rng = rng

    def write(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        """Return, for each prompt, `n` candidate sources of its function."""
        seed = int(self._rng.integers(0, 2**63 - 1))
        with _seeded_global_random(seed):
            rnd = random.Random(seed + 1)  # our own draws; DEAP's come from the global stream
            toolbox = self._toolbox(rnd) if self._pset is not None else None
            return [self._propose_one(prompt, n, rnd, toolbox) for prompt in prompts]

    def _parse(self, source: str, name: str) -> _Parent | None:
        key = (source, name)
        if key in self._parsed:
            self._parsed.move_to_end(key)
            return self._parsed[key]
        parent = self._parse_new(source, name)
        self._parsed[key] = parent
        if len(self._parsed) > PARSED_CACHE:
            self._parsed.popitem(last=False)
        return parent

    def _parse_new(self, source: str, name: str) -> _Parent | None:
        fn = find_function(source, name)
        if fn is None:
            return None
        tree = function_to_tree(fn, self._pset, self.signature) if self._pset is not None and self.signature else None
        cfg = self.config
        if tree is not None and (tree.height > cfg.max_height or len(tree) > cfg.max_nodes):
            tree = None  # over the limits: GP offspring would only copy it back
        forms, key = {ast.unparse(fn)}, None
        if tree is not None:
            expr = tree_to_expr(tree)
            forms.add(render_function(fn, name, expr))
            key = self._probe.fingerprint(expr) if self._probe else None
        return _Parent(fn, tree, frozenset(forms), key)

    def _toolbox(self, rnd: random.Random) -> base.Toolbox:
        cfg, pset = self.config, self._pset
        tb = base.Toolbox()
        tb.register("expr_mut", _subtree, min_=cfg.subtree_min_height, max_=cfg.subtree_max_height)
        tb.register("mate", gp.cxOnePoint)
        tb.register("uniform", gp.mutUniform, expr=tb.expr_mut, pset=pset)
        tb.register("node_replacement", gp.mutNodeReplacement, pset=pset)
        tb.register("ephemeral", gp.mutEphemeral, mode="one")
        tb.register("constant", _mut_constant, pset=pset, rng=rnd, sigma=cfg.constant_sigma)
        tb.register("shrink", gp.mutShrink)
        tb.register("insert", gp.mutInsert, pset=pset)
        for alias in ("mate",) + TREE_MUTATIONS:  # an over-limit child is replaced by a parent
            tb.decorate(alias, gp.staticLimit(key=operator.attrgetter("height"), max_value=cfg.max_height),
                        gp.staticLimit(key=len, max_value=cfg.max_nodes))
        return tb

    def _propose_one(self, prompt: Prompt, n: int, rnd: random.Random,
                     tb: base.Toolbox | None) -> list[str]:
        name = prompt.function_name
        parents = [p for src in prompt.functions if (p := self._parse(src, name)) is not None]
        seen = set().union(*(p.forms for p in parents))
        for p in parents:
            if p.key is not None:
                self._seen.add(p.key)
        out: list[str] = []
        for _ in range(n):
            candidate, key = None, None
            for _attempt in range(self.config.max_retries):
                key = None  # the fingerprint of this attempt's candidate only
                try:
                    candidate, expr = self._child(parents, name, rnd, tb)
                except (IndexError, RecursionError, SyntaxError, ValueError) as exc:
                    logger.warning("gp child failed (%s: %s); retrying", type(exc).__name__, exc)
                    continue
                if candidate in seen:
                    continue
                key = self._probe.fingerprint(expr) if self._probe and expr is not None else None
                if key is None or key not in self._seen:
                    break
                self.semantic_repeats += 1
            if candidate is None:  # every attempt failed: repeat a parent rather than nothing
                candidate = ast.unparse((parents[-1] if parents else self._seed).fn)
            seen.add(candidate)
            if key is not None:
                self._seen.add(key)
            out.append(candidate)
        return out

    def _child(self, parents: list[_Parent], name: str, rnd: random.Random,
               tb: base.Toolbox | None) -> tuple[str, str | None]:
        """Return a child's source, and its expression when it is a GP tree's (None for an AST edit)."""
        if tb is not None and (not parents or rnd.random() < self.config.fresh_prob):
            template = parents[-1].fn if parents else self._seed.fn
            expr = self._render(self._fresh_tree())
            return render_function(template, name, expr), expr
        pool = parents or [self._seed]
        parent = rnd.choices(pool, weights=range(1, len(pool) + 1))[0]  # better parents more often
        if parent.tree is not None and tb is not None:
            return self._tree_child(parent, pool, name, rnd, tb)
        return self._ast_child(parent, pool, name, rnd), None

    def _fresh_tree(self) -> gp.PrimitiveTree:
        cfg = self.config
        for _ in range(10):
            tree = gp.PrimitiveTree(gp.genHalfAndHalf(self._pset, cfg.init_min_height, cfg.init_max_height))
            if len(tree) <= cfg.max_nodes:
                return tree
        return gp.PrimitiveTree(gp.genGrow(self._pset, 0, 0))  # a single terminal

    def _mutate(self, tree: gp.PrimitiveTree, rnd: random.Random, tb: base.Toolbox) -> gp.PrimitiveTree:
        alias = rnd.choices(TREE_MUTATIONS, weights=self.config.mutation_weights())[0]
        (tree,) = getattr(tb, alias)(tree)
        return tree

    def _tree_child(self, parent: _Parent, pool: list[_Parent], name: str,
                    rnd: random.Random, tb: base.Toolbox) -> tuple[str, str]:
        cfg = self.config
        mates = [p for p in pool if p.tree is not None and p is not parent]
        tree = copy.deepcopy(parent.tree)
        if mates and rnd.random() < cfg.crossover_prob:
            other = copy.deepcopy(rnd.choice(mates).tree)
            tree = tb.mate(tree, other)[rnd.randrange(2)]
            if rnd.random() < cfg.mutation_after_crossover_prob:
                tree = self._mutate(tree, rnd, tb)
        else:
            tree = self._mutate(tree, rnd, tb)
        expr = self._render(tree)
        return render_function(parent.fn, name, expr), expr

    def _wrap_term(self) -> str:
        """Return a random expression of the return type, for `return old + c * (term)`."""
        cfg = self.config
        return self._render(gp.PrimitiveTree(gp.genGrow(
            self._pset, max(1, cfg.subtree_min_height), max(1, cfg.subtree_max_height))))

    def _render(self, tree: gp.PrimitiveTree) -> str:
        """The tree's source, simplified (see `simplify`): what is scored, archived and exported."""
        assert self._pset is not None
        return tree_to_expr(simplify(tree, self._pset))

    def _ast_child(self, parent: _Parent, pool: list[_Parent], name: str, rnd: random.Random) -> str:
        cfg = self.config
        others = [p for p in pool if p is not parent]
        fn = None
        if others and rnd.random() < cfg.ast_crossover_prob:
            fn = crossover_functions(parent.fn, rnd.choice(others).fn, rnd)
        grow = size(parent.fn) < cfg.max_ast_nodes
        if fn is None or not grow:
            wrap = self._wrap_term if self._pset is not None and grow else None
            fn = mutate_function(parent.fn, rnd, sigma=cfg.constant_sigma, wrap=wrap,
                                 count=rnd.randint(1, cfg.ast_max_mutations))
        fn.name = name
        return ast.unparse(fn)
