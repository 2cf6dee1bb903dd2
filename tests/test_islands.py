"""Tests of the programs database: .venv/bin/pytest tests/test_islands.py"""

from __future__ import annotations

import collections
import dataclasses
import json
import math

import numpy as np
import pytest

from islands import (
    EmptyDatabaseError,
    EmptyIslandError,
    IslandsConfig,
    Member,
    ProgramsDatabase,
    Reset,
    RestoreError,
    Sample,
    softmax,
)
from islands.cluster import Cluster


def scores_of(*values: float) -> dict[str, float]:
    """Return per-input scores for inputs "a", "b", ... in that order."""
    return {chr(ord("a") + i): float(v) for i, v in enumerate(values)}


def make_db(seed: int = 0, **overrides: object) -> ProgramsDatabase:
    """Return an empty database with a seeded generator."""
    return ProgramsDatabase(IslandsConfig(**overrides), np.random.default_rng(seed))


# --- softmax ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("logits", "temperature"),
    [
        ([0.0], 1.0),
        ([1.0, 2.0, 3.0], 1.0),
        ([1.0, 2.0, 3.0], 0.01),
        ([-5.0, 0.0, 5.0, 5.0], 100.0),
        ([1e300, -1e300, 0.0], 1e-6),  # would overflow without the max shift
    ],
)
def test_softmax_is_a_distribution_that_keeps_order(logits: list[float], temperature: float) -> None:
    p = softmax(np.array(logits), temperature)
    assert p.shape == (len(logits),)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[int(np.argmax(logits))] == p.max() > 0
    for i in range(len(logits)):
        for j in range(len(logits)):
            if logits[i] < logits[j]:
                assert p[i] <= p[j]


def test_softmax_matches_formula_and_is_shift_invariant() -> None:
    logits = np.array([0.3, -1.2, 2.0])
    expected = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum()
    np.testing.assert_allclose(softmax(logits, 0.5), expected, rtol=1e-12)
    np.testing.assert_allclose(softmax(logits + 1000.0, 0.5), expected, rtol=1e-9)


def test_softmax_temperature_sharpens_and_flattens() -> None:
    logits = np.array([0.0, 1.0])
    assert softmax(logits, 1e-3)[1] > 0.999
    assert softmax(logits, 1e3)[1] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("logits", "temperature", "message"),
    [
        ([1.0, math.nan], 1.0, "finite"),
        ([math.inf, 0.0], 1.0, "finite"),
        ([-math.inf], 1.0, "finite"),
        ([], 1.0, "non-empty"),
        ([1.0], 0.0, "temperature"),
        ([1.0], -1.0, "temperature"),
        ([1.0], math.nan, "temperature"),
    ],
)
def test_softmax_rejects_bad_input(logits: list[float], temperature: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        softmax(np.array(logits), temperature)


# --- config ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_islands", 0),
        ("num_islands", 2.0),
        ("num_islands", True),
        ("functions_per_prompt", 0),
        ("temperature_init", 0.0),
        ("temperature_init", -0.1),
        ("temperature_init", math.inf),
        ("temperature_init", "0.1"),
        ("temperature_period", 0),
        ("reset_period", -5),
        ("reset_period", 1.5),
        ("cluster_score", "median"),
    ],
)
def test_config_rejects_invalid_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"islands.{field}"):
        IslandsConfig(**{field: value})


def test_config_defaults_follow_funsearch() -> None:
    config = IslandsConfig()
    assert (config.num_islands, config.functions_per_prompt) == (10, 2)
    assert (config.temperature_init, config.temperature_period) == (0.1, 30_000)
    assert (config.reset_period, config.cluster_score) == (30_000, "mean")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_islands = 3  # type: ignore[misc]


# --- clusters --------------------------------------------------------------


def test_cluster_prefers_short_programs() -> None:
    cluster = Cluster((1.0,), 1.0)
    for program_id, length in [(1, 1000), (2, 10), (3, 100)]:
        cluster.add(program_id, length)
    normalized = (np.array([1000, 10, 100]) - 10) / (1000 + 1e-6)
    expected = np.exp(-normalized) / np.exp(-normalized).sum()
    np.testing.assert_allclose(cluster.probabilities(), expected, rtol=1e-12)

    rng = np.random.default_rng(1)
    counts = collections.Counter(cluster.sample(rng) for _ in range(20_000))
    assert counts[2] > counts[3] > counts[1]
    for index, program_id in enumerate([1, 2, 3]):
        assert counts[program_id] / 20_000 == pytest.approx(expected[index], abs=0.015)


def test_cluster_with_equal_lengths_is_uniform() -> None:
    cluster = Cluster((1.0,), 1.0)
    for program_id in range(4):
        cluster.add(program_id, 50)
    np.testing.assert_allclose(cluster.probabilities(), 0.25)


# --- sampling within an island ----------------------------------------------


@pytest.mark.parametrize(("temperature_init", "low", "high"), [(0.1, 0.99, 1.0), (100.0, 0.15, 0.25)])
def test_higher_scoring_clusters_are_sampled_more_at_low_temperature(
    temperature_init: float, low: float, high: float
) -> None:
    db = make_db(num_islands=1, functions_per_prompt=1, temperature_init=temperature_init)
    for program_id in range(5):  # cluster scores 0, 1, 2, 3, 4
        db.register(program_id, scores_of(program_id), 10, 0)
    counts = collections.Counter(db.sample().program_ids[0] for _ in range(4000))
    assert low <= counts[4] / 4000 <= high
    if temperature_init < 1:
        assert counts[0] == 0


@pytest.mark.parametrize("functions_per_prompt", [1, 2, 3, 5, 8])
def test_sample_takes_distinct_clusters_worst_first(functions_per_prompt: int) -> None:
    db = make_db(num_islands=1, functions_per_prompt=functions_per_prompt, temperature_init=1.0)
    for program_id in range(5):
        db.register(program_id, scores_of(program_id * 0.1), 10, 0)
    for _ in range(200):
        sample = db.sample()
        assert len(sample.program_ids) == min(5, functions_per_prompt)
        assert len(set(sample.program_ids)) == len(sample.program_ids)
        assert list(sample.scores) == sorted(sample.scores)
        assert sample.scores == tuple(pid * 0.1 for pid in sample.program_ids)


def test_sample_without_replacement_survives_underflow() -> None:
    # At temperature 0.1 the worse cluster's weight is exp(-10_000) == 0.0,
    # yet a two-parent prompt still gets both clusters.
    db = make_db(num_islands=1, functions_per_prompt=2)
    db.register(1, scores_of(0.0), 10, 0)
    db.register(2, scores_of(1000.0), 10, 0)
    for _ in range(20):
        assert db.sample().program_ids == (1, 2)


@pytest.mark.parametrize(
    ("registrations", "expected"),
    [(1, 0.75), (2, 0.5), (3, 0.25), (4, 1.0), (5, 0.75), (8, 1.0), (11, 0.25)],
)
def test_temperature_decays_and_restarts_with_the_period(registrations: int, expected: float) -> None:
    db = make_db(num_islands=2, temperature_init=1.0, temperature_period=4)
    for program_id in range(registrations):
        db.register(program_id, scores_of(program_id), 10, 1)
    summary = db.islands_summary()
    assert summary[1].temperature == pytest.approx(expected)
    assert summary[1].num_programs == registrations
    assert summary[0].temperature == 1.0  # the other island's schedule is its own


def test_temperature_changes_the_sampling_distribution() -> None:
    # Two clusters 0.1 apart: T = 0.1 early in the period, T = 0.01 near its end.
    def share_of_best(extra_registrations: int) -> float:
        db = make_db(num_islands=1, functions_per_prompt=1, temperature_period=10)
        db.register(1, scores_of(0.0), 10, 0)
        for _ in range(extra_registrations):
            db.register(2, scores_of(0.1), 10, 0)
        counts = collections.Counter(db.sample().program_ids[0] for _ in range(2000))
        return counts[2] / 2000

    at_t008 = math.exp(0.1 / 0.08) / (1 + math.exp(0.1 / 0.08))  # 2 registrations: T = 0.08
    assert share_of_best(1) == pytest.approx(at_t008, abs=0.025)
    assert share_of_best(8) > 0.99  # 9 registrations: T = 0.01


@pytest.mark.parametrize(("cluster_score", "expected"), [("mean", 2.0), ("last", 3.0)])
def test_cluster_score_reduction(cluster_score: str, expected: float) -> None:
    db = make_db(num_islands=1, cluster_score=cluster_score)
    db.register(7, {"a": 1.0, "b": 3.0}, 10, 0)
    assert db.sample().scores == (expected,)
    assert db.best() == (7, expected)


def test_cluster_score_choice_changes_which_cluster_is_best() -> None:
    # Program 1 is better on average, program 2 on the last input.
    for cluster_score, best_id in [("mean", 1), ("last", 2)]:
        db = make_db(num_islands=1, cluster_score=cluster_score)
        db.register(1, scores_of(10.0, 1.0), 10, 0)
        db.register(2, scores_of(0.0, 2.0), 10, 0)
        assert db.best()[0] == best_id


def test_same_signature_shares_a_cluster_whatever_the_key_order() -> None:
    db = make_db(num_islands=1)
    db.register(1, {"a": 1.0, "b": 2.0}, 10, 0)
    db.register(2, {"b": 2.0, "a": 1.0}, 20, 0)
    db.register(3, {"a": 2.0, "b": 1.0}, 10, 0)
    assert db.islands_summary()[0].num_clusters == 2
    assert db.state()["inputs"] == ["a", "b"]


# --- registration -------------------------------------------------------------


def test_register_none_goes_to_every_island_and_tracks_best() -> None:
    db = make_db(num_islands=3)
    db.register(1, scores_of(0.5), 10, None)
    db.register(2, scores_of(0.9), 10, 2)
    db.register(3, scores_of(0.9), 10, 2)  # equal score: the first keeps the title
    db.register(4, scores_of(0.1), 10, 0)
    assert db.members() == [[1, 4], [1], [1, 2, 3]]
    summary = db.islands_summary()
    assert [s.best_program_id for s in summary] == [1, 1, 2]
    assert [s.best_score for s in summary] == [0.5, 0.5, 0.9]
    assert [s.num_clusters for s in summary] == [2, 1, 2]
    assert db.best() == (2, 0.9)


@pytest.mark.parametrize(
    ("scores", "length", "island", "message"),
    [
        ({"a": math.nan}, 10, 0, "finite"),
        ({"a": -math.inf}, 10, 0, "finite"),
        ({}, 10, 0, "at least one"),
        ({"a": 1.0, "c": 1.0}, 10, 0, "inputs"),
        ({"a": 1.0}, 10, 0, "inputs"),
        ({"a": 1.0, "b": 1.0}, -1, 0, "length"),
        ({"a": 1.0, "b": 1.0}, 10, 2, "island"),
        ({"a": 1.0, "b": 1.0}, 10, -1, "island"),
    ],
)
def test_register_rejects_bad_input(scores: dict, length: int, island: int, message: str) -> None:
    db = make_db(num_islands=2)
    db.register(1, {"a": 0.0, "b": 0.0}, 10, None)
    with pytest.raises(ValueError, match=message):
        db.register(2, scores, length, island)
    assert db.members() == [[1], [1]]  # a rejected program leaves no trace


def test_empty_database_raises_clear_errors() -> None:
    db = make_db(num_islands=2)
    with pytest.raises(EmptyIslandError, match="register"):
        db.sample()
    with pytest.raises(EmptyDatabaseError):
        db.best()
    assert db.note_samples(30_000) == []  # nothing to re-found from


# --- resets -----------------------------------------------------------------


def four_islands(**overrides: object) -> ProgramsDatabase:
    """Return 4 islands whose bests are 0.0, 0.2, 5.0 and 7.0 (ids 0, 11, 12, 13)."""
    db = make_db(num_islands=4, reset_period=10, **overrides)
    db.register(0, scores_of(0.0), 10, None)
    db.register(11, scores_of(0.2), 10, 1)
    db.register(12, scores_of(5.0), 10, 2)
    db.register(13, scores_of(7.0), 10, 3)
    db.register(14, scores_of(3.0), 10, 3)
    return db


def test_reset_replaces_the_worse_half_with_founders_from_the_better_half() -> None:
    db = four_islands()
    assert db.note_samples(9) == []
    resets = db.note_samples(1)
    assert sorted(r.island for r in resets) == [0, 1]
    for reset in resets:
        assert (reset.source_island, reset.founder_id) in {(2, 12), (3, 13)}
    members = db.members()
    assert members[2:] == [[0, 12], [0, 13, 14]]  # survivors untouched
    summary = db.islands_summary()
    for reset in resets:
        assert members[reset.island] == [reset.founder_id]
        assert summary[reset.island].num_programs == 1
        assert summary[reset.island].best_program_id == reset.founder_id
        assert summary[reset.island].temperature == pytest.approx(0.1 * (1 - 1 / 30_000))
    assert db.best() == (13, 7.0)
    assert db.state()["resets"] == 1


def test_founders_come_from_both_surviving_islands() -> None:
    founders = set()
    for seed in range(20):
        db = four_islands(seed=seed)
        founders |= {r.founder_id for r in db.note_samples(10)}
    assert founders == {12, 13}


@pytest.mark.parametrize(
    ("counts", "expected_resets"), [([9], 0), ([10], 1), ([5, 5], 1), ([25], 2), ([3] * 11, 3)]
)
def test_one_reset_per_period_crossed(counts: list[int], expected_resets: int) -> None:
    db = four_islands()
    resets = [r for count in counts for r in db.note_samples(count)]
    assert len(resets) == 2 * expected_resets  # num_islands // 2 islands each time
    assert db.total_samples == sum(counts)
    assert db.state()["resets"] == expected_resets


def test_tied_islands_are_reset_in_random_order() -> None:
    reset_sets = set()
    for seed in range(30):
        db = make_db(seed=seed, num_islands=4, reset_period=1)
        db.register(0, scores_of(1.0), 10, None)
        reset_sets.add(frozenset(r.island for r in db.note_samples(1)))
    assert len(reset_sets) > 2


def test_note_samples_rejects_negative_count() -> None:
    with pytest.raises(ValueError, match="count"):
        make_db().note_samples(-1)


# --- determinism and restore ---------------------------------------------------


def drive(db: ProgramsDatabase, steps: int, seed: int, first_id: int, record: dict[int, Member]) -> list[object]:
    """Run a loop-like sequence (sample, register children, note samples); return what came out."""
    world = np.random.default_rng(seed)  # the "proposer + sandbox", independent of db's rng
    out: list[object] = []
    for step in range(steps):
        sample = db.sample()
        out.append(sample)
        program_id = first_id + step
        scores = {"x": float(world.integers(0, 6)) / 10, "y": float(world.integers(0, 3)) / 10}
        member = Member(program_id, scores, int(world.integers(20, 200)))
        record[program_id] = member
        db.register(member.program_id, member.scores, member.length, sample.island)
        out.extend(db.note_samples(1))
    return out


def build_run(seed: int) -> tuple[ProgramsDatabase, dict[int, Member]]:
    """Return a database after some registrations, samples and resets."""
    config = IslandsConfig(num_islands=4, functions_per_prompt=3, temperature_init=0.5,
                           temperature_period=7, reset_period=25)
    db = ProgramsDatabase(config, np.random.default_rng(seed))
    record = {0: Member(0, {"x": 0.0, "y": 0.0}, 100)}
    db.register(0, record[0].scores, record[0].length, None)
    drive(db, 120, seed=99, first_id=1, record=record)
    return db, record


def test_same_seed_same_run_and_different_seed_different_run() -> None:
    runs = [drive(build_run(seed)[0], 60, seed=5, first_id=1000, record={}) for seed in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert any(isinstance(item, Reset) for item in runs[0])


def test_restore_behaves_exactly_as_the_original() -> None:
    original, record = build_run(seed=11)
    assert original.state()["resets"] == 4  # 120 samples, period 25
    # Persist as the archive would: JSON for state and scores, raw generator state.
    state = json.loads(json.dumps(original.state()))
    stored = {pid: json.loads(json.dumps(m._asdict())) for pid, m in record.items()}
    members = [[Member(**stored[pid]) for pid in island] for island in original.members()]
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = original._rng.bit_generator.state  # what the archive stores

    restored = ProgramsDatabase.restore(original.config, rng, members, state)

    assert restored.members() == original.members()
    assert restored.state() == original.state()
    assert restored.islands_summary() == original.islands_summary()
    assert restored.best() == original.best()
    next_original = [original.sample() for _ in range(50)]
    assert [restored.sample() for _ in range(50)] == next_original
    # And the runs stay in step through registrations and resets.
    after = [drive(db, 60, seed=8, first_id=5000, record={}) for db in (restored, original)]
    assert after[0] == after[1]
    assert len({s.island for s in next_original}) > 1 and all(isinstance(s, Sample) for s in next_original)


def test_restore_refuses_members_that_do_not_match_the_state() -> None:
    original, record = build_run(seed=2)
    members = [[record[pid] for pid in island] for island in original.members()]
    state = original.state()
    rng = np.random.default_rng(0)
    with pytest.raises(RestoreError, match="island 1"):
        ProgramsDatabase.restore(original.config, rng, [members[0], members[1][:-1], *members[2:]], state)
    with pytest.raises(RestoreError, match="islands"):
        ProgramsDatabase.restore(original.config, rng, members[:-1], state)
    bad_scores = [[m._replace(scores={"z": 1.0}) for m in island] for island in members]
    with pytest.raises(RestoreError, match=r"island 0, program \d+: scores are for inputs"):
        ProgramsDatabase.restore(original.config, rng, bad_scores, state)
    with pytest.raises(RestoreError, match="version"):
        ProgramsDatabase.restore(original.config, rng, members, {**state, "version": 99})


def test_state_is_small_and_json_serializable() -> None:
    db, _ = build_run(seed=1)
    state = db.state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert len(state["islands"]) == db.config.num_islands
    assert all(set(island) == {"num_programs", "best_program_id"} for island in state["islands"])
    assert sum(len(island) for island in db.members()) > 40  # the members are not in it
    assert len(json.dumps(state)) < 400
