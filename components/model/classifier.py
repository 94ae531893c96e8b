"""Text classifier = backbone (our Encoder or a HF model) + dropout + linear head.

`ClassifierNet` is the plain nn.Module that training optimises. `TextClassifier`
wraps it with its tokenizer and labels for inference: pure torch + tokenizers
(no Lightning), eval mode, `torch.inference_mode`, deterministic. It is what
evaluate and the registered MLflow model load:

    clf = TextClassifier.from_folder("models/finetuned")
    clf.labels                               # ["negative", "positive"]
    clf.predict_proba(["a fine film"])       # np.ndarray [1, 2], rows sum to 1
    clf.embed(["a fine film"])               # np.ndarray [1, H]

Folder layout (no pickle): model.safetensors (ClassifierNet state dict),
tokenizer.json, config.json = {"format", "kind", "backbone", "labels",
"max_length", "pad_id", "dropout", **extra}. backbone is {"kind": "encoderflow",
"encoder": EncoderConfig fields} or {"kind": "hf", "config": HF config dict, "pooling"}.
A multi_label model's config.json also holds "task": "multi_label" and "thresholds"
(one per label, tuned on val): its probabilities are per-label sigmoids, and
`predict_labels` returns the label set of each text.

Texts become token ids with model/tokens.py and run in length-sorted, bounded batches with
model/batching.py: the functions training uses, so serving sees the ids training saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.model.backbone import backbone_spec, build_backbone
from components.model.batching import run_batches
from components.model.biencoder import SUBFOLDER, BiEncoder
from components.model.io import FORMAT, read_folder, write_folder
from components.model.tokens import encode

KIND = "encoderflow.classifier"


class ClassifierNet(nn.Module):
    """(input_ids [B, T], attention_mask [B, T]) -> logits [B, C]."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.output_size, num_classes)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_pooled(input_ids, attention_mask)[0]  # [B, C]

    def logits_and_pooled(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C], the pooled vector [B, H] the head reads) from one backbone pass."""
        _, pooled = self.backbone(input_ids, attention_mask)  # [B, H]
        return self.head(self.drop(pooled)), pooled

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids, attention_mask)[1]  # [B, H]


class TextClassifier:
    """Inference wrapper: texts -> probabilities / embeddings."""

    def __init__(self, net: ClassifierNet, tokenizer, labels: list[str], max_length: int,
                 pad_id: int, meta: dict | None = None):
        self.net = net.eval()
        self.tokenizer = tokenizer  # tokenizers.Tokenizer (post-processor adds [CLS] ... [SEP])
        self.tokenizer.no_padding()
        self.labels = list(labels)
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self.meta = dict(meta or {})
        self.task = self.meta.get("task", "single_label")
        self.thresholds = [float(t) for t in self.meta.get("thresholds") or [0.5] * len(self.labels)]
        self.biencoder = None  # pair with finetune.bi_encoder: a BiEncoder (its `embed` is per text)

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    # ------------------------------------------------------------------ files
    @classmethod
    def from_folder(cls, folder: str | Path) -> "TextClassifier":
        folder = Path(folder)
        net, meta, tokenizer = read_folder(folder, KIND, lambda m: ClassifierNet(
            build_backbone(m["backbone"]), len(m["labels"]), m.get("dropout", 0.0)))
        clf = cls(net, tokenizer, meta["labels"], meta["max_length"], meta["pad_id"], meta)
        if "bi_encoder" in meta:  # pair: the bi-encoder trained beside it (model/biencoder.py)
            clf.biencoder = BiEncoder.from_folder(folder / meta["bi_encoder"]["folder"])
        return clf

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write the three files into `folder` (use inside atomic_dir for stage outputs), and
        the bi-encoder, when there is one, into its subfolder (named in config.json)."""
        meta = {**self.meta, **(extra or {}), "format": FORMAT, "kind": KIND,
                "backbone": backbone_spec(self.net.backbone), "labels": self.labels,
                "max_length": self.max_length, "pad_id": self.pad_id,
                "dropout": self.net.drop.p}
        if self.biencoder is not None:
            meta["bi_encoder"] = {"folder": SUBFOLDER, "positive": self.biencoder.positive}
            self.biencoder.save(Path(folder) / SUBFOLDER)
        write_folder(folder, self.net, meta, self.tokenizer)

    # -------------------------------------------------------------- inference
    @property
    def pair(self) -> bool:
        return self.task == "pair"

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_length (the same ids training saw).
        pair: `texts` are (text, text_pair) tuples, truncated longest-first."""
        return encode(self.tokenizer, texts, self.max_length, pair=self.pair)

    def _batches(self, texts: list[str], batch_size: int, fn) -> np.ndarray:
        """Apply fn(ids, mask) -> [b, D] in length-sorted batches; rows in input order."""
        self.net.eval()
        return run_batches(self.encode(texts), self.pad_id, batch_size, fn)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities [N, C] (float32, rows sum to 1), columns in `labels` order.
        multi_label: one independent sigmoid probability per label (rows need not sum to 1)."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.multi_label:
            return self._batches(texts, batch_size, lambda i, m: torch.sigmoid(self.net(i, m).float()))
        return self._batches(texts, batch_size, lambda i, m: torch.softmax(self.net(i, m).float(), -1))

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """multi_label: 0/1 [N, C], each label's probability >= its tuned threshold."""
        return (np.asarray(probs) >= np.asarray(self.thresholds, dtype=np.float64)[None, :]).astype(np.int64)

    def predict_labels(self, texts: list[str], batch_size: int = 64) -> list[list[str]]:
        """multi_label: the label set of each text (labels.json order; [] when none passes)."""
        chosen = self.decide(self.predict_proba(texts, batch_size))
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in chosen]

    def predict(self, texts: list[str], batch_size: int = 64) -> list[str]:
        """Label names, argmax of predict_proba."""
        probs = self.predict_proba(texts, batch_size)
        return [self.labels[i] for i in probs.argmax(axis=1)]

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Pooled sentence vectors [N, H] from the fine-tuned backbone."""
        if len(texts) == 0:
            return np.zeros((0, self.net.backbone.output_size), dtype=np.float32)
        return self._batches(texts, batch_size, self.net.embed)
