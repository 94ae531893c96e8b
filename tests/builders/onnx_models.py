"""Tiny TRAINED models of every family and task for the ONNX tests (no hub, real training).

    clf, (texts, gold) = build(root, "lstm")    # a TextClassifier, 600 unseen texts + their labels

Data: tests/tiny_pipeline.py's synthetic projects, through the real ingest and tokenize
stages. Training: finetune's own fit_classifier (Lightning) from a random init, a few epochs:
enough that argmax is not a coin flip (the parity tests check the mean confidence), so
"int8 keeps the argmax" means something. The teacher is tests/teacher_model.py's tiny BERT
fine-tuned the same way. The pair case is the finetune stage itself with a bi-encoder.
`static`: a hand-built stand-in for the static family (token embeddings, no positions,
masked mean pooling, a small MLP; the Encoder interface) until that family lands on main;
it is trained with a short plain-torch loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from builders import tiny_pipeline as tp

# case -> (task, params overrides). Options vary across cases so every pooling and position
# kind goes through the exporter at least once.
CASES = {
    "transformer": ("single_label", {"model.positions": "learned", "model.pooling": "cls"}),
    "lstm": ("single_label", {"model.family": "lstm", "model.pooling": "max"}),
    "cnn": ("single_label", {"model.family": "cnn", "model.kernel_sizes": [3, 5]}),
    "teacher": ("single_label", {}),
    "static": ("single_label", {}),
    "multi_label": ("multi_label", {"model.positions": "rotary", "model.pooling": "max"}),
    "pair": ("pair", {"model.positions": "sinusoidal", "finetune.bi_encoder.enabled": True,
                      "finetune.bi_encoder.positive": "positive"}),
}
N_TEXTS = 600  # unseen texts per case: 99% agreement then allows at most 6 flips


def project(root: Path, task: str) -> Path:
    """A tiny project of `task` with data/prepared and models/tokenizer (ingest + tokenize).
    pair: the label is the sentiment of text_pair (sentiment_pairs), which a tiny model learns
    in seconds; tiny_pipeline's paraphrase pairs stay near chance, where argmax is a coin flip."""
    if not (root / "models" / "tokenizer" / "tokenizer.json").is_file():
        tp.write_project(root, task=task)
        if task == "pair":
            import pandas as pd

            rows = [*sentiment_pairs(320, seed=1), *((t, "", None) for t, _ in tp.sentences(80, seed=7))]
            pd.DataFrame(rows, columns=["text", "text_pair", "label"]).to_csv(root / "raw.csv", index=False)
        tp.run_stages(root, ("ingest", "tokenize"))
    return root


def sentiment_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(text, text_pair, label): filler words, then a tiny_pipeline sentence and its sentiment."""
    import random

    rng = random.Random(seed)
    return [(" ".join(rng.sample(tp.FILL, 6)), b, label) for b, label in tp.sentences(n, seed=seed)]


def unseen_texts(task: str) -> tuple[list, list]:
    """N_TEXTS (texts, gold labels) of the project's kind from another seed than its data
    (pair: (text, text_pair) tuples; multi_label: a list of names per text)."""
    if task == "pair":
        rows = sentiment_pairs(N_TEXTS, seed=11)
        return [(a, b) for a, b, _ in rows], [y for *_, y in rows]
    rows = tp.topic_rows(N_TEXTS, seed=11) if task == "multi_label" else tp.sentences(N_TEXTS, seed=11)
    return [t for t, _ in rows], [y for _, y in rows]


def _cfg(root: Path, overrides: dict):
    from components.core.config import load_params

    sets = {"model.num_layers": 2, "finetune.init": "random", **overrides}
    return load_params(root / "params.yaml", [f"{k}={json.dumps(v)}" for k, v in sets.items()])


def build(root: Path, case: str):
    """(TextClassifier, unseen_texts) of `case` (CASES), trained under `root` (one folder per task;
    run it with `root` as the working directory: the stages log to its MLflow store)."""
    from components.core.paths import Paths
    from components.model.classifier import TextClassifier
    from components.stages import finetune

    task, overrides = CASES[case]
    paths = Paths.at(project(root, task))
    cfg = _cfg(root, overrides)
    if case == "teacher":
        from builders import teacher_model

        folder = teacher_model.add_teacher(root, teacher_model.tiny_bert(root / "tiny-bert"), epochs=8)
        return TextClassifier.from_folder(folder), unseen_texts(task)
    if case == "static":
        return train_static(paths, cfg), unseen_texts(task)
    if case == "pair":  # the stage: classifier + bi-encoder saved together
        finetune.run(cfg, paths)
        return TextClassifier.from_folder(paths.finetuned), unseen_texts(task)
    from components.training.fit_classifier import fit_classifier

    return fit_classifier(cfg, paths, progress=False).classifier, unseen_texts(task)


def static_backbone(vocab_size: int, hidden: int, pad_id: int):
    """The static family's shape: (input_ids, mask) -> (states [B, T, H], masked mean [B, H])."""
    import torch
    from torch import nn

    from components.model.encoder import pool

    class Static(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = SimpleNamespace(family="static")
            self.output_size = hidden
            self.tok = nn.Embedding(vocab_size, hidden, padding_idx=pad_id)
            self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU())

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
            states = self.mlp(self.tok(input_ids))  # [B, T, H]
            return states, pool(states, attention_mask.bool(), "mean")  # [B, H]

    return Static()


def train_static(paths, cfg, steps: int = 150):
    """The static stand-in, trained with Adam on the train split (plain torch loop)."""
    import pandas as pd
    import torch
    from tokenizers import Tokenizer

    from components.model.batching import pad_batch
    from components.model.classifier import ClassifierNet, TextClassifier

    torch.manual_seed(0)
    tok = Tokenizer.from_file(str(paths.tokenizer))
    labels = json.loads(paths.labels.read_text())["labels"]
    net = ClassifierNet(static_backbone(tok.get_vocab_size(), 32, 0), len(labels), 0.0)
    clf = TextClassifier(net, tok, labels, cfg.model.max_length, 0)
    train = pd.read_parquet(paths.split("train"))
    seqs, y = clf.encode(train["text"].tolist()), torch.tensor(train["label"].to_numpy())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(steps):
        rows = torch.randint(0, len(seqs), (32,), generator=torch.Generator().manual_seed(step))
        ids, mask = pad_batch([seqs[i] for i in rows], 0)
        loss = torch.nn.functional.cross_entropy(net(ids, mask), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return clf
