"""evaluate: metrics vs hand-computed values, baselines, behaviour checks, plots, metrics.json."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from components.evaluation import baselines, behaviour, metrics, plots

# 5 rows, 2 classes. argmax: 0 0 1 1 0 vs labels 0 1 1 0 0 -> rows 0, 2, 4 right.
PROBS = np.array([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7], [0.15, 0.85], [0.55, 0.45]])
LABELS = np.array([0, 1, 1, 0, 0])
NAMES = ["negative", "positive"]


def test_doctests():
    for mod in (metrics, baselines, behaviour):
        assert doctest.testmod(mod).failed == 0, mod.__name__


def test_metrics_match_hand_computed_values():
    m = metrics.classification_metrics(PROBS, LABELS, NAMES, ece_bins=5, bootstrap_samples=200, seed=1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # class 0: tp 2 fp 1 fn 1 -> P = R = F1 = 2/3; class 1: tp 1 fp 1 fn 1 -> 1/2
    assert m["precision.negative"] == pytest.approx(2 / 3) and m["recall.negative"] == pytest.approx(2 / 3)
    assert m["precision.positive"] == pytest.approx(1 / 2) and m["recall.positive"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.35, 0.7, 0.15, 0.55])))
    # bins of width 0.2: {0.9 right, 0.85 wrong}, {0.65 wrong, 0.7 right}, {0.55 right}
    ece = 2 / 5 * abs(0.5 - 0.875) + 2 / 5 * abs(0.5 - 0.675) + 1 / 5 * abs(1 - 0.55)
    assert m["ece"] == pytest.approx(ece)
    # positives score 0.35, 0.7; negatives 0.1, 0.85, 0.45: 3 of 6 pairs ordered right
    assert m["roc_auc"] == pytest.approx(0.5)
    assert m["n"] == 5
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]


def test_reliability_bins_reproduce_ece():
    m = metrics.classification_metrics(PROBS, LABELS, NAMES, ece_bins=5, bootstrap_samples=10)
    bins = metrics.reliability_bins(PROBS, LABELS, 5)
    assert [b["count"] for b in bins] == [0, 0, 1, 2, 2]
    ece = sum(b["count"] / 5 * abs(b["accuracy"] - b["confidence"]) for b in bins)
    assert ece == pytest.approx(m["ece"])


def test_multiclass_auc_and_f1_match_sklearn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    labels = rng.integers(0, 3, size=40)
    m = metrics.classification_metrics(probs, labels, ["a", "b", "c"], bootstrap_samples=10)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))


def test_single_class_split_has_no_auc_and_no_nan():
    m = metrics.classification_metrics(PROBS[:1], LABELS[:1], NAMES, bootstrap_samples=10)
    assert "roc_auc" not in m
    assert all(math.isfinite(v) for v in m.values())


def test_bootstrap_ci_is_deterministic_and_contains_the_point():
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5, dtype=float)
    a = metrics.bootstrap_ci(correct, 500, seed=3)
    assert a == metrics.bootstrap_ci(correct, 500, seed=3)
    assert a != metrics.bootstrap_ci(correct, 500, seed=4)
    assert a[0] < correct.mean() < a[1]
    assert 0 < a[0] and a[1] < 1


def test_rounded_is_sorted_and_flat():
    out = metrics.rounded(metrics.flatten("model", {"b": 1 / 3, "a": 2}))
    assert list(out) == ["model.a", "model.b"] and out["model.b"] == 0.333333


# ------------------------------------------------------------------ baselines


def _toy_split():
    from builders.cls_project import toy_texts

    rows = toy_texts(120, seed=1)
    x = [t for t, _ in rows]
    y = np.array([y for _, y in rows])
    return x[:80], y[:80], x[80:100], y[80:100], x[100:], y[100:]


def test_baselines_beat_majority_on_separable_data():
    trx, try_, vax, vay, tex, tey = _toy_split()
    out = baselines.sklearn_baselines(trx, try_, vax, vay, tex, 2, seed=0)
    acc = {k: float((p.argmax(1) == tey).mean()) for k, p in out.items()}
    assert acc["majority"] == pytest.approx(0.5)
    assert acc["tfidf_lr"] >= 0.9 and acc["nbsvm"] >= 0.9
    for p in out.values():
        assert p.shape == (len(tex), 2) and np.allclose(p.sum(1), 1)


def test_nbsvm_multiclass_probabilities():
    x = ["red apple", "red cherry", "green grass", "green leaf", "blue sky", "blue sea"] * 4
    y = np.array([0, 0, 1, 1, 2, 2] * 4)
    p = baselines.nbsvm(x, y, x[:6], y[:6], ["red car", "green tea", "blue ink"], 3)
    assert p.shape == (3, 3) and np.allclose(p.sum(1), 1)
    assert p.argmax(1).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ behaviour

POS_WORDS, NEG_WORDS = {"great", "fun"}, {"bad", "terrible", "not"}


def lexical(texts):
    """Toy sentiment model: P(positive) = sigmoid(#positive words - #negative words)."""
    score = np.array([sum((w in POS_WORDS) - (w in NEG_WORDS) for w in t.lower().split()) for t in texts], float)
    p = 1 / (1 + np.exp(-score))
    return np.stack([1 - p, p], axis=1)


def name_sensitive(texts):
    """Flips to positive whenever 'john' appears: must fail name invariance."""
    p = lexical(texts)
    has = np.array(["john" in t.lower() for t in texts])
    p[has] = [0.0, 1.0]
    return p


TEXTS = ["john says the film is great", "mary was fun in 2 hours", "a great fun movie",
         "john is bad", "sarah thinks it is great and fun", "10 bad minutes"]


def test_behaviour_on_a_toy_model():
    out, notes = behaviour.run_checks(lexical, TEXTS, NAMES, seed=0)
    assert notes == []
    assert out["invariance_names.pass_rate"] == 1.0 and out["invariance_names.n"] == 4
    assert out["invariance_numbers.pass_rate"] == 1.0 and out["invariance_numbers.n"] == 2
    for kind in ("append", "prepend_not", "insert_not"):
        assert out[f"directional_{kind}.pass_rate"] == 1.0
    assert out["directional_append.n"] == 4  # the texts the toy calls positive


def test_behaviour_catches_a_name_sensitive_model():
    out, _ = behaviour.run_checks(name_sensitive, TEXTS, NAMES, seed=0)
    assert out["invariance_names.pass_rate"] < 1.0


def test_directional_skipped_for_other_labels():
    out, notes = behaviour.run_checks(lexical, TEXTS, ["sports", "politics"], seed=0)
    assert not any(k.startswith("directional") for k in out)
    assert "invariance_names.pass_rate" in out
    assert len(notes) == 1 and "skipped" in notes[0]


# ------------------------------------------------------------------ plots


def test_plots_and_csvs(tmp_path):
    plots.confusion(LABELS, PROBS.argmax(1), NAMES, tmp_path)
    plots.reliability(metrics.reliability_bins(PROBS, LABELS, 5), tmp_path, 0.31)
    rows = plots.read_csv(tmp_path / "confusion.csv")
    assert len(rows) == 5 and rows[1] == {"actual": "positive", "predicted": "negative"}
    assert len(plots.read_csv(tmp_path / "reliability.csv")) == 5
    (tmp_path / "curve.csv").write_text("epoch,step,train_loss,val_f1\n1,4,0.7,\n2,8,0.5,0.8\n")
    assert plots.curve(tmp_path / "curve.csv", tmp_path / "curve.png", "curve")
    assert not plots.curve(tmp_path / "missing.csv", tmp_path / "missing.png", "x")
    for name in ("confusion_matrix.png", "reliability.png", "curve.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
