"""Semantic dedupe in the GP proposer: children with a known program's outputs on the probes are drawn again.

The probe's verdicts are checked against the real thing: programs it calls
one are scored in the real sandbox on bin_packing_or's train split.
"""

from __future__ import annotations

import ast
import collections
import math
from collections.abc import Iterator

import numpy as np
import pytest

from evolve.problems.cap_set import GP_PRIMITIVES as CAP_SET_PRIMITIVES
from evolve.proposers.base import Prompt
from evolve.proposers.gp import GPConfig, GPProposer
from evolve.proposers.gp.primitives import infer_signature, signature_from_declaration
from evolve.proposers.gp.semantic import Probe, Seen
from evolve.spec import load_spec
from sandbox import Limits, SandboxPool

BEST_FIT = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)
'''


def _probe() -> Probe:
    sig = infer_signature(ast.parse(BEST_FIT).body[0], (-2.0, 2.0))  # type: ignore[arg-type]
    assert sig is not None
    probe = Probe.for_signature(sig)
    assert probe is not None
    return probe


@pytest.mark.parametrize("a, b", [
    ("bins - item", "np.minimum(bins - item, bins - item)"),
    ("item * 2.0", "item + item"),
    ("-(bins - item)", "item - bins"),
    ("np.sqrt(np.abs(bins))", "np.abs(bins) ** 0.5"),
    ("np.divide(bins, 0.0) * 0.0", "np.divide(-bins, 0.0) * 0.0"),  # nan either way
])
def test_the_same_function_written_two_ways_has_one_fingerprint(a: str, b: str) -> None:
    probe = _probe()
    assert probe.fingerprint(a) == probe.fingerprint(b) is not None


@pytest.mark.parametrize("a, b", [
    ("bins - item", "bins - item + 0.001"),
    ("bins - item", "np.minimum(bins - item, 50.0)"),  # differs only above 50: bin capacities are 100-150
    ("np.max(bins)", "np.min(bins)"),
    ("item", "np.minimum(item, 30.0)"),  # a scalar's threshold: six probe values of item
    ("bins * 0.0", "item * 0.0"),  # a scalar and an array: shapes differ
])
def test_different_functions_have_different_fingerprints(a: str, b: str) -> None:
    probe = _probe()
    assert probe.fingerprint(a) != probe.fingerprint(b)


def test_no_probe_where_a_terminal_needs_what_the_gp_does_not_know_and_none_for_broken_text() -> None:
    seed = ast.parse("def priority(el: tuple[int, ...], n: int) -> float:\n    return 0.0\n").body[0]
    sig = signature_from_declaration(CAP_SET_PRIMITIVES, seed, (-2.0, 2.0))  # type: ignore[arg-type]
    assert Probe.for_signature(sig) is None  # `np.array(el)`: el is not a GP argument
    assert _probe().fingerprint("bins -") is None and _probe().fingerprint("undefined_name + 1") is None


def test_seen_keeps_the_newest_keys_only() -> None:
    seen = Seen(limit=3)
    for key in (b"a", b"b", b"c", b"d"):
        seen.add(key)
    assert len(seen) == 3 and b"a" not in seen and b"d" in seen


def _chain(dedupe: bool, steps: int = 60) -> tuple[GPProposer, list[str]]:
    """Children of a lineage: each batch's first child is the next batch's parent."""
    proposer = GPProposer(None, BEST_FIT, np.random.default_rng(0), GPConfig(semantic_dedupe=dedupe))
    pool, children = [BEST_FIT], []
    for _ in range(steps):
        parents = tuple(pool[-2:])
        [out] = proposer.write([Prompt(island=0, parent_ids=tuple(range(len(parents))), functions=parents,
                                       scores=(0.0,) * len(parents), function_name="priority")], 8)
        children += out
        pool.append(out[0])
    return proposer, children


def _expr(source: str) -> str:
    fn = ast.parse(source).body[0]
    return ast.unparse(fn.body[-1].value)  # type: ignore[attr-defined]


def test_with_dedupe_children_repeat_known_outputs_far_less_often() -> None:
    probe = _probe()
    counts = {}
    for dedupe in (False, True):
        proposer, children = _chain(dedupe)
        keys = [probe.fingerprint(_expr(c)) for c in children]
        counts[dedupe] = len(set(keys)) / len(keys)
        assert (proposer.semantic_repeats > 0) == dedupe
    assert counts[False] < 0.95 < 0.99 < counts[True], counts  # 0.91 and 0.996 at this seed


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2, limits=Limits(timeout_s=30.0)) as pool:
        yield pool


def test_programs_the_probe_calls_one_score_the_same_in_the_sandbox(pool: SandboxPool) -> None:
    spec = load_spec("bin_packing_or")
    probe = _probe()
    _, children = _chain(dedupe=False)
    groups = collections.defaultdict(set)
    for child in children:
        groups[probe.fingerprint(_expr(child))].add(child)
    several = [sorted(g)[:2] for g in groups.values() if len(g) > 1][:6]
    assert len(several) >= 3
    train = spec.inputs("train")
    for pair in several:
        futures = [pool.submit(spec.program(src), spec.entry, train) for src in pair]
        a, b = (f.result() for f in futures)
        assert a.ok and b.ok, (a.error, b.error)
        assert all(math.isclose(a.scores[k], b.scores[k], rel_tol=1e-12) for k in a.scores), pair


def test_a_parent_outside_the_primitive_set_is_never_evaluated_by_the_probe(tmp_path) -> None:
    marker = tmp_path / "ran"
    hostile = BEST_FIT.replace("return -(bins - item)", f"return bins - len(open({str(marker)!r}, 'w').name)")
    proposer = GPProposer(None, BEST_FIT, np.random.default_rng(0), GPConfig())
    [out] = proposer.write([Prompt(island=0, parent_ids=(1,), functions=(hostile,), scores=(0.0,),
                                   function_name="priority")], 8)
    assert len(out) == 8 and not marker.exists()
