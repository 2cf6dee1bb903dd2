"""The ibp_seeding problem: the sandboxed skeleton, the trusted check, baselines and a GP run through the CLI.

    .venv/bin/pytest tests/test_problem_ibp_seeding.py      # about 40 s on 2 idle cores (the GP run is most of it)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.problems.ibp import engine
from evolve.problems.ibp.problems import problem_input
from evolve.session import evaluate_functions
from evolve.spec import load_spec
from sandbox import Evaluation, FailureKind, SandboxPool
from conftest import evolve, evolve_json

# Top sector first, fewest dots and numerators first inside it: a rule a physicist might write.
TOP_DOWN = '''def priority(indices, t, r, s, dots, distance, t_target, r_target, s_target):
    return 10.0 * t - r - 2.0 * s
'''


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(2) as p:
        yield p


def _prefix_equations(problem: dict, order: list) -> int:
    used, unreduced, _ = engine.seed_until_reduced(problem, order)
    assert unreduced == 0
    return used


def test_sandboxed_scores_agree_with_the_engine_run_here(pool: SandboxPool) -> None:
    spec = load_spec("ibp_seeding")
    results = {r.name: r for r in evaluate_functions(spec, {**spec.baseline_functions(), "top_down": TOP_DOWN}, "train", pool)}
    problem = problem_input("box")
    pool_seeds = [tuple(c) for c in problem["candidates"]]
    rt, st = problem["r_target"], problem["s_target"]
    expected = {
        "seed": _prefix_equations(problem, pool_seeds),  # all ties: Laporta's order
        "laporta": _prefix_equations(problem, sorted(pool_seeds, key=lambda a: -float(
            engine.weight(a)[2] <= rt and engine.weight(a)[3] <= st))),
        "top_down": _prefix_equations(problem, sorted(pool_seeds, key=lambda a: -(10.0 * engine.weight(a)[0]
                                                                                  - engine.weight(a)[2] - 2.0 * engine.weight(a)[3]))),
    }
    for name, used in expected.items():
        ev = results[name].evaluation
        assert ev.ok, ev.error
        assert ev.scores == {"box": -float(used)}  # the check's recomputed score
        assert results[name].metrics["standard_seeding"] == {"box": problem["standard_equations"]}
    # The standard seeding, stopped once the targets reduce, needs no more than all of it.
    assert expected["laporta"] <= problem["standard_equations"]
    assert expected["top_down"] < expected["seed"]


def test_the_trusted_scorer_ignores_the_claim_and_refuses_what_is_not_an_order() -> None:
    spec = load_spec("ibp_seeding")
    problem = problem_input("box")
    n = len(problem["candidates"])
    used, _, _ = engine.seed_until_reduced(problem, problem["candidates"])
    honest = spec.verify("train", Evaluation(scores={"box": 0.0}, outputs={"box": list(range(n))}))
    assert honest.ok and honest.scores == {"box": -float(used)}  # the placeholder claim is not believed
    claimed = spec.verify("train", Evaluation(scores={"box": -1.0}, outputs={"box": list(range(n))}))
    assert claimed.scores == {"box": -float(used)}
    for output, message in (([0, 1, 2], "order of the"), ([0] * n, "twice"), ([*range(n - 1), n], "positions"),
                            ([float(i) for i in range(n)], "positions"), ("abc", "order of the")):
        bad = spec.verify("train", Evaluation(scores={"box": 0.0}, outputs={"box": output}))
        assert bad.failure is FailureKind.INVALID_OUTPUT and message in bad.error, (output, bad.error)


def test_a_priority_that_is_not_a_number_is_invalid_output(pool: SandboxPool) -> None:
    spec = load_spec("ibp_seeding")
    bad = "def priority(indices, t, r, s, dots, distance, t_target, r_target, s_target):\n    return indices\n"
    [result] = evaluate_functions(spec, {"bad": bad}, "train", pool)
    assert result.evaluation.failure is FailureKind.INVALID_OUTPUT


def test_baseline_prints_the_standard_seeding_equations() -> None:
    proc = evolve("baseline", "ibp_seeding", "--split", "train")
    assert proc.returncode == 0, proc.stderr
    standard = problem_input("box")["standard_equations"]
    assert f"standard_seeding: box {standard}" in proc.stdout
    assert "laporta on train: score" in proc.stdout


def test_gp_run_through_the_cli_reports_the_best_count_next_to_the_standard(tmp_path: Path, small_config: Path) -> None:
    db = tmp_path / "ibp.db"
    proc = evolve("run", "ibp_seeding", "--db", str(db), "--budget", "24", "--workers", "2", "--config", str(small_config))
    assert proc.returncode == 0, proc.stderr
    problem = problem_input("box")
    # The run's last words: the best rule's equations next to the standard seeding's.
    assert f"standard_seeding: box {problem['standard_equations']}" in proc.stdout
    assert "equations: box" in proc.stdout
    status = evolve_json("status", str(db))
    seed_equations = _prefix_equations(problem, [tuple(c) for c in problem["candidates"]])
    assert status["score"] >= -seed_equations  # at least as good as the seed it started from
    assert status["metrics"]["equations"]["box"] == -status["score"]
    assert status["metrics"]["standard_seeding"]["box"] == problem["standard_equations"]


TRIANGLE_LOADER = '''@evolve.inputs
def load_inputs(split: str) -> dict:
    """A one-loop massless triangle with two light-like legs, s = (p1 + p2)^2."""
    from evolve.problems.ibp.family import Family
    from evolve.problems.ibp.seeding import build_input

    triangle = Family(name="triangle", loops=("k",), externals=("p1", "p2"),
                      propagators=("k", "k + p1", "k + p1 + p2"),
                      kinematics={("p1", "p1"): "0", ("p2", "p2"): "0", ("p1", "p2"): "s/2"}, invariants=("s",))
    return {"triangle": build_input(triangle, [(2, 1, 1), (1, 2, 2)])}
'''


def test_a_copied_spec_takes_a_new_family(tmp_path: Path, pool: SandboxPool) -> None:
    """The README's recipe: copy the spec, build the inputs from your own Family."""
    source = Path(load_spec("ibp_seeding").path).read_text()
    start = source.index("@evolve.inputs")
    end = source.index("@evolve.score")
    spec_file = tmp_path / "triangle_seeding.py"
    spec_file.write_text(source[:start] + TRIANGLE_LOADER + "\n\n" + source[end:])
    spec = load_spec(spec_file)
    problem = spec.inputs("train")["triangle"]
    assert problem["masters"] == [[1, 0, 1]]  # the triangle reduces to the s-channel bubble
    results = {r.name: r for r in evaluate_functions(spec, spec.baseline_functions(), "train", pool)}
    for result in results.values():
        assert result.evaluation.ok, result.evaluation.error
        assert -result.evaluation.scores["triangle"] <= problem["pool_equations"]  # the targets reduced


def test_the_triangle_box_baselines_through_the_sandbox(pool: SandboxPool) -> None:
    """The paper's problem: the standard seeding at its cap; the 92-seed rule reduces the target with the
    Lorentz-invariance equations and falls short without them; a certified list of fewer than 88 seeds
    reduces it at both points of the kinematics."""
    from evolve.problems.ibp import seeding
    from evolve.problems.ibp.problems import rule_seeds, smallest_certified

    spec = load_spec("ibp_trianglebox")
    problem = problem_input("trianglebox")
    cap = problem["cap_equations"]
    assert cap == problem["standard_equations"] == 60876
    results = {r.name: r.evaluation for r in evaluate_functions(spec, spec.baseline_functions(), "train", pool)}
    assert all(ev.ok for ev in results.values()), {k: v.error for k, v in results.items()}
    assert results["laporta"].scores == {"trianglebox": -float(cap)}  # it needs the whole standard seeding
    system = seeding.pool_system(problem)
    assert len(rule_seeds(problem)) == 92 and system.prefix(rule_seeds(problem), problem["targets"]).unreduced == 0
    assert results["usovitsch"].scores == {"trianglebox": -92.0 * 9}  # 9 equations per seed
    assert -cap < results["nearest"].scores["trianglebox"] < 0
    tested = {r.name: r.evaluation for r in evaluate_functions(spec, spec.baseline_functions(), "test", pool)}
    ibp_only = problem_input("trianglebox_ibp_only")
    assert seeding.pool_system(ibp_only).prefix(rule_seeds(ibp_only), ibp_only["targets"]).unreduced == 1
    # IBP alone: the rule first, then the rest in Laporta's order, and the cap comes before the target reduces.
    assert tested["usovitsch"].scores == {"trianglebox_point2": -92.0 * 9,
                                          "trianglebox_ibp_only": -2.0 * ibp_only["cap_equations"]}
    for name in ("trianglebox", "trianglebox_ibp_only"):
        problem = problem_input(name)
        system = seeding.pool_system(problem)
        small = smallest_certified(problem)
        assert len(small) < 88 and system.prefix(small, problem["targets"]).unreduced == 0, name
        other = problem_input("trianglebox_point2")
        assert seeding.pool_system(other).prefix(small, other["targets"]).unreduced == 0  # not an accident of the point
        for i in small[:5]:  # and each seed is needed
            assert system.prefix([j for j in small if j != i], problem["targets"]).unreduced == 1
