"""The bi-encoder of a pair model (finetune.bi_encoder): one shared encoder, each text alone.

`BiEncoderNet` is the plain nn.Module that training optimises (training/fit_biencoder.py): the
backbone's pooled vector of ONE text ("[CLS] text [SEP]", pooled as model.pooling),
L2-normalised, so the dot product of two vectors is their cosine. `BiEncoder` wraps it with
its tokenizer for inference, like TextClassifier: pure torch + tokenizers, eval mode,
length-sorted batches (it ships inside the registered pyfunc).

    bi = BiEncoder.from_folder("models/finetuned/biencoder")
    bi.embed(["a fine film", "the film was fine"])   # np.ndarray [2, H], unit rows

On disk it is the SUBFOLDER "biencoder" of the pair model's folder, in the same format
(model.safetensors, config.json = {"format", "kind", "backbone", "max_length", "pad_id",
"positive", "temperature"}, tokenizer.json); the classifier's config.json names it under
"bi_encoder", so TextClassifier.from_folder loads both (model/classifier.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.model.backbone import backbone_spec, build_backbone
from components.model.batching import run_batches
from components.model.io import FORMAT, read_folder, write_folder
from components.model.tokens import encode

KIND = "encoderflow.biencoder"
SUBFOLDER = "biencoder"


class BiEncoderNet(nn.Module):
    """(input_ids [B, T], attention_mask [B, T]) of single texts -> unit vectors [B, H]."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(input_ids, attention_mask)[1]  # [B, H]
        return F.normalize(pooled.float(), dim=-1)  # [B, H], |row| = 1


class BiEncoder:
    """Inference wrapper: texts -> unit vectors (one per text)."""

    def __init__(self, net: BiEncoderNet, tokenizer, max_length: int, pad_id: int, meta: dict | None = None):
        self.net = net.eval()
        self.tokenizer = tokenizer  # tokenizers.Tokenizer; its post-processor adds [CLS] ... [SEP]
        self.tokenizer.no_padding()
        self.max_length, self.pad_id = int(max_length), int(pad_id)
        self.meta = dict(meta or {})

    @property
    def positive(self) -> str:
        """The label whose pairs it was trained to bring together."""
        return str(self.meta.get("positive", ""))

    @property
    def dim(self) -> int:
        return self.net.backbone.output_size

    @classmethod
    def from_folder(cls, folder: str | Path) -> "BiEncoder":
        net, meta, tokenizer = read_folder(Path(folder), KIND, lambda m: BiEncoderNet(build_backbone(m["backbone"])),
                                           "bi-encoder")
        return cls(net, tokenizer, meta["max_length"], meta["pad_id"], meta)

    def save(self, folder: str | Path) -> None:
        """Write the three files into `folder` (the classifier's save puts it in SUBFOLDER)."""
        meta = {**self.meta, "format": FORMAT, "kind": KIND, "backbone": backbone_spec(self.net.backbone),
                "max_length": self.max_length, "pad_id": self.pad_id}
        write_folder(Path(folder), self.net, meta, self.tokenizer)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each single text, truncated to max_length (the ids training saw)."""
        return encode(self.tokenizer, texts, self.max_length)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors [N, H] float32, one per text, in input order."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.net.eval()
        return run_batches(self.encode(texts), self.pad_id, batch_size, self.net)
