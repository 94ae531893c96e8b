"""Baselines choose word / character / both features on val (components/evaluation/baselines.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from components.core.errors import DataError
from components.evaluation import baselines as B

POS = ["好", "棒", "喜欢", "满意", "推荐", "不错", "值得买", "很快"]
NEG = ["差", "烂", "失望", "后悔", "退货", "垃圾", "难用", "太慢"]
NEUTRAL = list("这个产品质量手机书买的了我们东西快递包装价格收到颜色屏幕电池客服朋友")


def chinese_reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n unspaced synthetic reviews: neutral characters around one or two sentiment
    words, in one or two clauses (a comma between), so a "word" is a whole clause."""
    rng = random.Random(seed)
    texts, labels = [], np.arange(n) % 2
    for y in labels:
        clauses = []
        for _ in range(rng.randint(1, 2)):
            chars = rng.sample(NEUTRAL, rng.randint(3, 8))
            chars.insert(rng.randint(0, len(chars)), rng.choice(POS if y else NEG))
            clauses.append("".join(chars))
        texts.append("，".join(clauses) + rng.choice("。！"))
    return texts, labels


def split(texts, labels):
    """60/20/20 train/val/test."""
    a, b = int(len(texts) * 0.6), int(len(texts) * 0.8)
    return texts[:a], labels[:a], texts[a:b], labels[a:b], texts[b:], labels[b:]


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
    from cls_project import toy_texts

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


def test_choice_is_tagged_on_the_active_mlflow_run(project):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        args = split(*chinese_reviews(200, seed=6))[:5]
        with mlflow.start_run() as run:
            B.sklearn_baselines(*args, 2)
        tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    finally:
        mlflow.set_tracking_uri(previous)
    assert "char_wb" in tags["baseline.tfidf_lr.analyzer"] and "char_wb" in tags["baseline.nbsvm.analyzer"]
    assert float(tags["baseline.nbsvm.C"]) in B.C_GRID
    assert tags["baseline.tfidf_lr.val_accuracy"].startswith("word ")
