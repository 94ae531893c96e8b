"""A tiny labelled project for the finetune / evaluate tests (real tokenize stage).

Two clearly separable classes: positive texts use positive words, negative
texts negative ones, with names and numbers sprinkled in for the behaviour
checks. Everything fits in a few KB and trains in seconds.
"""

from __future__ import annotations

import json
import random

import pandas as pd

from components.core.config import (
    DistillConfig,
    EvaluateConfig,
    FinetuneConfig,
    ModelConfig,
    Params,
    PretrainConfig,
    ProjectConfig,
    StaticStudentConfig,
    TeacherConfig,
    TokenizeConfig,
)
from components.core.paths import Paths

POS = ["great", "fun", "wonderful", "moving", "brilliant", "charming", "superb", "delightful"]
NEG = ["bad", "boring", "awful", "dull", "terrible", "tedious", "clumsy", "lifeless"]
FILL = ["the", "film", "movie", "story", "is", "was", "a", "and", "with", "john", "mary", "2", "10", "acting"]
LABELS = ["negative", "positive"]


def toy_texts(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        words = rng.sample(POS if y else NEG, 2) + rng.sample(FILL, 4)
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {i}", y))  # the index keeps texts unique
    return rows


def tiny_params(family: str = "transformer", tmp_uri: str = "sqlite:///mlflow.db", **finetune) -> Params:
    model = ModelConfig(family=family, hidden_size=16, num_layers=2, num_heads=2, ffn_size=32,
                        max_length=32, kernel_sizes=(3,))
    # Gold labels only unless a test asks for distillation (it then writes a transfer set).
    ft = dict(max_epochs=2, batch_size=8, lr=3e-3, precision="32", patience=2,
              distill=DistillConfig(enabled=False))
    ft.update(finetune)
    ft.setdefault("static", StaticStudentConfig(enabled=False))
    # distillation needs the teacher on; no base outputs (tests/integration/test_static.py has them)
    teacher = TeacherConfig(enabled=ft["distill"].enabled, base=False)
    return Params(project=ProjectConfig(seed=7, tracking_uri=tmp_uri), teacher=teacher,
                  pretrain=PretrainConfig(vector_weight=0.0),
                  tokenize=TokenizeConfig(vocab_size=100, min_frequency=1),
                  model=model, finetune=FinetuneConfig(**ft),
                  evaluate=EvaluateConfig(bootstrap_samples=50, ece_bins=5, random_init_baseline=False))


UNLABELED = ["the film was fine", "a story"]


def write_prepared(root, rows: list[tuple[str, int]], n_train: int, n_val: int,
                   unlabeled: list[str] = UNLABELED) -> Paths:
    """data/prepared under `root` as ingest leaves it: train, val and test cut in that order
    from `rows` ((text, label id) pairs), the `unlabeled` texts, labels.json."""
    paths = Paths.at(root)
    paths.prepared.mkdir(parents=True, exist_ok=True)
    cuts = {"train": rows[:n_train], "val": rows[n_train:n_train + n_val], "test": rows[n_train + n_val:]}
    for split, part in cuts.items():
        pd.DataFrame({"id": [f"{split}{i}" for i in range(len(part))], "text": [t for t, _ in part],
                      "label": pd.Series([y for _, y in part], dtype="int64"),
                      "label_name": [LABELS[y] for _, y in part]}).to_parquet(paths.split(split))
    pd.DataFrame({"id": [f"u{i}" for i in range(len(unlabeled))], "text": unlabeled}).to_parquet(
        paths.split("unlabeled"))
    paths.labels.write_text(json.dumps({"labels": LABELS}))
    return paths


def make_project(root, n_train: int = 64, n_val: int = 16, n_test: int = 24) -> Paths:
    """data/prepared + models/tokenizer + data/tokenized under `root`."""
    from components.stages.tokenize import tokenize

    paths = write_prepared(root, toy_texts(n_train + n_val + n_test, seed=0), n_train, n_val)
    tokenize(TokenizeConfig(vocab_size=100, min_frequency=1), paths, show_progress=False)
    return paths


def save_pretrained(cfg: Params, paths: Paths) -> None:
    """models/pretrained: a (randomly initialised) encoder saved with the real io."""
    from components.model.encoder import EncoderConfig, build_encoder
    from components.model.io import save_encoder, tokenizer_vocab_size

    enc = build_encoder(EncoderConfig.from_params(cfg.model, tokenizer_vocab_size(paths.tokenizer)))
    save_encoder(enc, paths.pretrained, paths.tokenizer, extra={"pretrain": {"steps": 0}})
