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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.core.errors import DataError
from components.model.io import FORMAT, write_folder

KIND = "encoderflow.classifier"


def truncate(ids: list[int], max_length: int) -> list[int]:
    """Cut to max_length tokens, keeping the final token (the [SEP] the post-processor added).

    >>> truncate([2, 10, 11, 12, 3], 4)
    [2, 10, 11, 3]
    """
    return list(ids) if len(ids) <= max_length else list(ids[: max_length - 1]) + [ids[-1]]


def truncate_pair(ids: list[int], max_length: int, sep_id: int) -> list[int]:
    """pair: cut "[CLS] a [SEP] b [SEP]" to max_length tokens longest-first (one token at a time
    from the longer side, as HF's "longest_first"); both [SEP]s stay. Ids without a [SEP]
    before the last token fall back to `truncate`.

    >>> truncate_pair([2, 10, 11, 12, 3, 20, 3], 6, 3)
    [2, 10, 11, 3, 20, 3]
    >>> truncate_pair([2, 10, 3, 20, 21, 22, 23, 3], 6, 3)
    [2, 10, 3, 20, 21, 3]
    """
    if len(ids) <= max_length:
        return list(ids)
    ids = list(ids)
    try:
        cut = ids.index(sep_id, 1, len(ids) - 1)
    except ValueError:
        return truncate(ids, max_length)
    a, b = ids[1:cut], ids[cut + 1:-1]
    room = max(max_length - 3, 0)
    while len(a) + len(b) > room:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return [ids[0], *a, sep_id, *b, ids[-1]]


# Inference batches are length-sorted, padded to a multiple of PAD_MULTIPLE tokens and hold
# at most batch_size * TOKENS_PER_ROW padded tokens (long texts come in smaller batches).
# Tensor sizes are then bounded and few, and so is batch prediction's peak RSS as the input
# grows (benchmarks/predict_load.py: 737 -> 904 MiB from 10k to 200k texts). With one width
# per batch and full batches of long texts, glibc's heap kept ever new freed sizes and
# `encoderflow predict` grew from 0.7 to 1.3 GB over 100k texts.
PAD_MULTIPLE = 8
TOKENS_PER_ROW = 64


def sep_token_id(tok) -> int:
    """The id of the separator the pair template puts between the texts ([SEP] or </s>)."""
    for name in ("[SEP]", "</s>"):
        if tok.token_to_id(name) is not None:
            return int(tok.token_to_id(name))
    raise DataError("the tokenizer has no [SEP] token; the pair task needs one")


def pad_batch(seqs: list[list[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row, rounded up to `multiple`: (input_ids [B, T] long, attention_mask [B, T] bool).

    >>> pad_batch([[2, 5, 3], [2, 3]], 0)[0].tolist()
    [[2, 5, 3], [2, 3, 0]]
    >>> pad_batch([[2, 5, 3], [2, 3]], 0, multiple=4)[1].tolist()
    [[True, True, True, False], [True, True, False, False]]
    """
    width = -(-max(len(s) for s in seqs) // multiple) * multiple
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = True
    return ids, mask


def batch_rows(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Row indices in length order, cut into batches of at most `batch_size` rows and
    `max_tokens` tokens once padded to a multiple of PAD_MULTIPLE (always at least one row).

    >>> batch_rows([30, 3, 120, 5, 9], batch_size=3, max_tokens=200)
    [[1, 3, 4], [0], [2]]
    """
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):  # stable: deterministic
        width = -(-max(lengths[i], 1) // PAD_MULTIPLE) * PAD_MULTIPLE
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * width <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def run_batches(seqs: list[list[int]], pad_id: int, batch_size: int, fn) -> np.ndarray:
    """fn(ids [b, T], mask [b, T]) -> [b, D] over token-id rows in length-sorted, bounded
    batches (batch_rows), under inference_mode; float32 [N, D] with rows in input order."""
    out: list[tuple[list[int], torch.Tensor]] = []
    with torch.inference_mode():
        for idx in batch_rows([len(s) for s in seqs], batch_size, batch_size * TOKENS_PER_ROW):
            ids, mask = pad_batch([seqs[i] or [pad_id] for i in idx], pad_id, PAD_MULTIPLE)
            out.append((idx, fn(ids, mask).float()))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    result = torch.empty((len(seqs), out[0][1].shape[1]), dtype=torch.float32)
    for idx, values in out:
        result[idx] = values
    return result.numpy()


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


def backbone_spec(backbone: nn.Module) -> dict:
    """JSON description that `build_backbone` turns back into the same architecture."""
    from components.model.hf_backbone import HFBackbone

    if isinstance(backbone, HFBackbone):
        return {"kind": "hf", "config": backbone.config_dict(), "pooling": backbone.pooling}
    return {"kind": "encoderflow", "encoder": backbone.cfg.to_dict()}


def build_backbone(spec: dict) -> nn.Module:
    if spec.get("kind") == "hf":
        from components.model.hf_backbone import HFBackbone

        return HFBackbone.from_config_dict(spec["config"], spec.get("pooling", "mean"))
    from components.model.encoder import EncoderConfig, build_encoder

    return build_encoder(EncoderConfig(**spec["encoder"]))


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
        from components.model.io import read_folder

        folder = Path(folder)
        net, meta, tokenizer = read_folder(folder, KIND, lambda m: ClassifierNet(
            build_backbone(m["backbone"]), len(m["labels"]), m.get("dropout", 0.0)))
        clf = cls(net, tokenizer, meta["labels"], meta["max_length"], meta["pad_id"], meta)
        if "bi_encoder" in meta:  # pair: the bi-encoder trained beside it (model/biencoder.py)
            from components.model.biencoder import BiEncoder

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
            from components.model.biencoder import SUBFOLDER

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
        encs = self.tokenizer.encode_batch([tuple(t) for t in texts] if self.pair else list(texts))
        if self.pair:
            sep = sep_token_id(self.tokenizer)
            return [truncate_pair(e.ids, self.max_length, sep) for e in encs]
        return [truncate(e.ids, self.max_length) for e in encs]

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
