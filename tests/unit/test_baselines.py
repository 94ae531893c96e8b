"""Baselines choose word / character / both features on val (components/evaluation/baselines.py)."""

from __future__ import annotations

import numpy as np
import pytest

from components.core.errors import DataError
from components.evaluation import baselines as B

from builders.data import chinese_reviews, split


def word_only_accuracy(trx, try_, vax, vay, tex, tey) -> float:
    """The old baseline: TF-IDF word 1-2 grams + LR, C picked on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    xtr, xva, xte = vec.fit_transform(trx), vec.transform(vax), vec.transform(tex)
    models = [LogisticRegression(C=c, max_iter=2000).fit(xtr, try_) for c in B.C_GRID]
    best = max(models, key=lambda m: m.score(xva, vay))
    return best.score(xte, tey)


def accuracy(probs, labels) -> float:
    return float((probs.argmax(1) == labels).mean())


def test_chinese_baselines_use_characters_and_beat_word_features():
    trx, try_, vax, vay, tex, tey = split(*chinese_reviews(400, seed=0))
    word = word_only_accuracy(trx, try_, vax, vay, tex, tey)
    fitted = B.fit_all(trx, try_, vax, vay, tex, 2, seed=0)
    for name, b in fitted.items():
        assert "char_wb" in b.analyzer, name
        assert accuracy(b.probs, tey) >= 0.9 and accuracy(b.probs, tey) > word + 0.2, (name, word)


def test_choice_is_the_best_val_accuracy_and_ties_keep_word():
    from builders.cls_project import toy_texts

    rows = toy_texts(120, seed=1)  # separable English: every analyzer gets val accuracy 1.0
    x, y = [t for t, _ in rows], np.array([y for _, y in rows])
    fitted = B.fit_all(*split(x, y)[:5], 2, seed=0)
    for b in fitted.values():
        assert b.val_accuracy == {"word": 1.0, "char_wb": 1.0, "word+char_wb": 1.0}
        assert (b.analyzer, b.c) == ("word", B.C_GRID[0])  # ties: earlier analyzer, smaller C
    trx, try_, vax, vay, tex, _ = split(*chinese_reviews(300, seed=2))
    b = B.fit_tfidf_lr(trx, try_, vax, vay, tex, 2)
    assert b.val_accuracy[b.analyzer] == max(b.val_accuracy.values()) > b.val_accuracy["word"]


def test_same_inputs_give_identical_probabilities():
    args = split(*chinese_reviews(200, seed=3))[:5]
    first, again = B.sklearn_baselines(*args, 2, seed=5), B.sklearn_baselines(*args, 2, seed=5)
    for name in first:
        assert np.array_equal(first[name], again[name]), name


def test_without_val_rows_both_feature_sets_and_c_1():
    trx, try_, _, _, tex, tey = split(*chinese_reviews(200, seed=4))
    for fit in (B.fit_tfidf_lr, B.fit_nbsvm):
        b = fit(trx, try_, [], np.array([], dtype=int), tex, 2)
        assert (b.analyzer, b.c, b.val_accuracy) == ("word+char_wb", 1.0, {})
        assert accuracy(b.probs, tey) >= 0.9


def test_multiclass_tfidf_lr_sums_to_one():
    x = ["red apple", "red cherry", "green grass", "green leaf", "blue sky", "blue sea"] * 4
    y = np.array([0, 0, 1, 1, 2, 2] * 4)
    p = B.tfidf_lr(x, y, x[:6], y[:6], ["red car", "green tea", "blue ink"], 3)
    assert p.shape == (3, 3) and np.allclose(p.sum(1), 1)
    assert p.argmax(1).tolist() == [0, 1, 2]


def test_no_features_is_a_one_line_data_error():
    with pytest.raises(DataError, match=r"^baselines: no word or character features in the 2 train texts$"):
        B.count_features(["", ""], ["a"], ["b"])
