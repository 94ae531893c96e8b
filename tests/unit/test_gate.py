"""The promotion gate's rules and its paired bootstrap (pure functions, known answers)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.evaluation.gate import decide, paired_bootstrap


def vec(ones: int, n: int) -> np.ndarray:
    return np.array([1.0] * ones + [0.0] * (n - ones))


def test_paired_bootstrap_known_answers():
    assert paired_bootstrap(np.ones(40), np.zeros(40), 200, seed=0) == (1.0, 1.0, 1.0)
    assert paired_bootstrap(np.ones(40), np.ones(40), 200, seed=0) == (0.0, 0.0, 0.0)
    # swapping which rows are right: zero mean gain, CI straddles zero
    gain, lo, hi = paired_bootstrap(np.tile([1, 0], 50), np.tile([0, 1], 50), 500, seed=1)
    assert gain == 0.0 and lo < 0 < hi


def test_paired_bootstrap_is_seeded_and_rejects_bad_shapes():
    a, b = vec(70, 100), np.roll(vec(60, 100), 7)
    assert paired_bootstrap(a, b, 300, seed=3) == paired_bootstrap(a, b, 300, seed=3)
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(np.ones(3), np.ones(4), 100, seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap(np.ones(0), np.ones(0), 100, seed=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60), st.integers(0, 9))
def test_paired_bootstrap_ci_stays_within_the_paired_differences(pairs, seed):
    new = np.array([p[0] for p in pairs], dtype=float)
    old = np.array([p[1] for p in pairs], dtype=float)
    gain, lo, hi = paired_bootstrap(new, old, 200, seed=seed)
    diff = new - old
    assert gain == pytest.approx(diff.mean())
    # A resample of whole pairs is a mean of some of the per-row differences, so the CI
    # can never leave [min, max] of them (resampling new and old independently could:
    # new >= old on every row yet a negative lower bound).
    assert diff.min() - 1e-12 <= lo <= hi <= diff.max() + 1e-12


def test_paired_bootstrap_ci_matches_the_normal_approximation_on_a_large_sample():
    rng = np.random.default_rng(0)
    new = (rng.random(2000) < 0.75).astype(float)
    old = np.where(rng.random(2000) < 0.8, new, 1 - new)  # correlated, as two models are
    gain, lo, hi = paired_bootstrap(new, old, 2000, seed=0)
    diff = new - old
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))  # the paired CI's half-width
    assert lo == pytest.approx(gain - half, abs=0.15 * half)
    assert hi == pytest.approx(gain + half, abs=0.15 * half)


def gate(new, champ=None, **kw):
    args = dict(champion_version="1" if champ is not None else None, min_gain=0.005,
                floor_accuracy=0.0, floors={}, samples=500, seed=0)
    args.update(kw)
    return decide(new, champ, **args)


def test_first_model_becomes_champion_when_it_passes_the_floors():
    d = gate(vec(80, 100), floors={"tfidf_lr": 0.75}, floor_accuracy=0.5)
    assert d.alias == "champion" and d.reason == "first model to pass the floors"
    assert d.checks == {"floor_accuracy": True, "floor_vs_tfidf_lr": True}
    assert d.gain is None and d.champion_accuracy is None


def test_a_tie_with_the_baseline_as_metrics_json_stores_it_passes_the_floor():
    # 8/9 = 0.888...; evaluate wrote the baseline's equal score rounded to 6 places
    assert gate(vec(8, 9), floors={"tfidf_lr": 0.888889}).checks["floor_vs_tfidf_lr"] is True
    assert gate(vec(8, 9), floors={"tfidf_lr": 0.88889}).checks["floor_vs_tfidf_lr"] is False


def test_first_model_below_a_floor_is_only_challenger():
    assert gate(vec(70, 100), floors={"tfidf_lr": 0.75}).alias == "challenger"
    d = gate(vec(70, 100), floor_accuracy=0.9)
    assert d.alias == "challenger" and d.reason == "failed: floor_accuracy"


def test_clear_gain_with_ci_above_zero_takes_champion():
    champ = vec(60, 200)
    new = champ.copy()
    new[60:100] = 1.0  # right on 40 more rows, wrong on none that the champion got right
    d = gate(new, champ)
    assert d.alias == "champion"
    assert d.gain == pytest.approx(0.2) and d.ci_low > 0
    assert d.champion_accuracy == pytest.approx(0.3) and d.accuracy == pytest.approx(0.5)


def test_small_or_noisy_gain_stays_challenger():
    champ = vec(50, 100)
    same = gate(champ.copy(), champ)  # identical: gain 0
    assert same.alias == "challenger" and not same.checks["min_gain"]
    noisy = np.roll(champ, 25)  # 50/100 right, different rows
    noisy[99] = 1.0  # +1 row: gain 0.01 >= min_gain, but the CI includes 0
    d = gate(noisy, champ)
    assert d.gain == pytest.approx(0.01) and d.checks["min_gain"]
    assert not d.checks["ci_excludes_zero"] and d.alias == "challenger"
    assert "ci_excludes_zero" in d.reason


def test_gain_without_the_floor_is_not_enough():
    champ = vec(10, 100)
    new = vec(50, 100)
    d = gate(new, champ, floors={"tfidf_lr": 0.8})
    assert d.checks["min_gain"] and d.checks["ci_excludes_zero"]
    assert d.alias == "challenger" and d.reason == "failed: floor_vs_tfidf_lr"


def test_min_gain_threshold_is_inclusive_and_numbers_serialize():
    champ = vec(0, 100)
    new = vec(100, 100)
    d = gate(new, champ, min_gain=1.0)
    assert d.alias == "champion"
    data = d.as_dict()
    assert data["alias"] == "champion" and data["n_test"] == 100 and data["min_gain"] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=80),
       st.floats(0.0, 0.2), st.integers(0, 5))
def test_gate_never_crowns_a_worse_or_not_better_enough_model(pairs, min_gain, seed):
    new = np.array([p[0] for p in pairs], dtype=float)
    old = np.array([p[1] for p in pairs], dtype=float)
    d = decide(new, old, champion_version="1", min_gain=min_gain, floor_accuracy=0.0,
               floors={}, samples=100, seed=seed)
    if new.mean() - old.mean() < max(min_gain, 1e-12):  # worse, tied, or gain below min_gain
        assert d.alias == "challenger"
