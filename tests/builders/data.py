"""Hand-made data shared by a unit test and its MLflow twin (tests/integration/test_mlflow_logging.py):
the tokenize stage's data/prepared and the baselines' Chinese reviews, each built to exercise
one thing (see the section comments). Written straight to disk, no ingest.
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pandas as pd

from components.core.paths import Paths

# --- the tokenize stage (tests/unit/test_tokenize.py) ----------------------------------------

ENGLISH = [
    "Hello, World! It's a good movie.",
    "A good film, and a bad film: the plot is thin.",
    "The actors are great; the story is not.",
    "Café culture: déjà vu all over again.",
    "Hello again, world. The movie is good, the film is bad.",
]
CHINESE = ["我爱北京天安门。", "今天天气很好，我们去看电影。", "这部电影很好看，北京的天气也很好。"]
# Many distinct words seen exactly twice: lots of equal pair counts, i.e. merge
# ties, which is where tokenizers' own WordPieceTrainer is non-deterministic.
TIES = [" ".join(f"{a}{b}{c}" for c in "aeiou") for a in "bcdfg" for b in "klmnp"] * 2
TRAIN = ENGLISH * 3 + CHINESE * 3 + TIES + ["plantedtrain " * 3]
PLANTED = "zyxwvq"  # only in val/test: must never become a vocabulary entry


def write_split(root, name, texts, labels=None):
    prepared = Paths.at(root).prepared
    prepared.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"id": [hashlib.sha1(t.encode()).hexdigest() for t in texts], "text": texts})
    if labels is not None:
        df["label"] = pd.Series(labels, dtype="int64")
        df["label_name"] = [["negative", "positive"][i] for i in labels]
    df.to_parquet(prepared / f"{name}.parquet", index=False)


def tokenize_project(root, test_texts=None, unlabeled=None) -> Paths:
    """data/prepared for the tokenize stage: train = TRAIN, val and test hold PLANTED."""
    write_split(root, "train", TRAIN, [i % 2 for i in range(len(TRAIN))])
    write_split(root, "val", [f"{PLANTED} {PLANTED} film"] * 3, [0, 1, 0])
    test_texts = test_texts or [f"{PLANTED} movie {PLANTED}"] * 4
    write_split(root, "test", test_texts, [i % 2 for i in range(len(test_texts))])
    write_split(root, "unlabeled", unlabeled if unlabeled is not None else ["the plot " * 50, "good"])
    (Paths.at(root).labels).write_text(json.dumps({"labels": ["negative", "positive"]}))
    return Paths.at(root)


# --- the baselines (tests/unit/test_baselines.py): unspaced Chinese reviews ------------------

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
