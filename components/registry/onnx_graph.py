"""torch -> ONNX: one graph from token ids to probabilities, for every encoder family.

`ClassifierGraph` wraps a ClassifierNet: (input_ids [B, T] int64, attention_mask [B, T]
int64) -> (probs [B, C], pooled [B, H]); probs are the softmax of the head's logits, or
per-label sigmoids for multi_label. `EmbeddingGraph` wraps a BiEncoderNet -> embedding
[B, H] (unit rows). `to_onnx` exports either with torch.onnx's default exporter (torch.export,
dynamo=True) with a dynamic batch and length axis.

Family notes (what torch.export can and cannot trace):
- transformer, cnn, Hugging Face backbones, and any family built from plain tensor ops
  (the static one: embeddings + masked mean) export as they are;
- lstm packs its sequences (pack_padded_sequence: data-dependent sizes, not traceable).
  `PaddedLSTM` computes the same function on the padded batch: the forward direction runs
  over the padded rows (pads come after the real tokens, so they never reach a real
  position), the backward direction runs over each row's real prefix reversed in place
  (pads stay at the end), and pad positions are zeroed as pad_packed_sequence leaves them.
  Its parameters are the original LSTM's, so the export is exact up to float rounding
  (tests/test_onnx_parity.py holds it to 1e-4 on probabilities).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from components.core.errors import DataError, first_line
from components.model.families import LSTMBody

OUTPUTS = ("probs", "pooled")
# not "embedding": that is also the name the exporter gives the token lookup's value
EMBEDDING = ("text_embedding",)


class ClassifierGraph(nn.Module):
    """(input_ids [B, T], attention_mask [B, T]) int64 -> (probs [B, C], pooled [B, H]) float32."""

    def __init__(self, net: nn.Module, multi_label: bool):
        super().__init__()
        self.net, self.multi_label = net, multi_label

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        logits, pooled = self.net.logits_and_pooled(input_ids, attention_mask.bool())  # [B, C], [B, H]
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)
        return probs, pooled.float()


class EmbeddingGraph(nn.Module):
    """A bi-encoder: (input_ids [B, T], attention_mask [B, T]) int64 -> unit vectors [B, H]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.net(input_ids, attention_mask.bool()).float()  # [B, H]


def _one_direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """The forward ("") or backward ("_reverse") half of a 1-layer bidirectional LSTM as its own
    unidirectional LSTM, sharing the parameter tensors."""
    one = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        setattr(one, name, getattr(lstm, name + suffix))
    return one


class PaddedLSTM(nn.Module):
    """LSTMBody's function without packed sequences (see the module docstring):
    (input_ids [B, T], mask [B, T] bool, right-padded) -> states [B, T, H]."""

    def __init__(self, body: LSTMBody):
        super().__init__()
        self.embeddings, self.ln_f = body.embeddings, body.ln_f
        self.layers = nn.ModuleList(nn.ModuleList([_one_direction(lstm, ""), _one_direction(lstm, "_reverse")])
                                    for lstm in body.layers)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)  # [B, T, H]
        lengths = mask.sum(1, keepdim=True).clamp(min=1)  # [B, 1]; real tokens are a prefix
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]  # [1, T]
        real = pos < lengths  # [B, T]
        # position t of row b reads position rev[b, t]: the real prefix reversed, pads in place
        # (rev is its own inverse, so the same gather maps the backward outputs back)
        rev = torch.where(real, lengths - 1 - pos, pos)[..., None]  # [B, T, 1]
        for forward, backward in self.layers:
            f, _ = forward(x)  # [B, T, H/2]
            b, _ = backward(x.gather(1, rev.expand(-1, -1, x.shape[-1])))  # [B, T, H/2], reversed order
            b = b.gather(1, rev.expand(-1, -1, b.shape[-1]))
            x = torch.cat([f, b], -1) * real[..., None]  # [B, T, H]; pads 0 as pad_packed_sequence
        return self.ln_f(x)


def exportable(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` in which every LSTMBody is a PaddedLSTM (same weights)."""
    module = copy.deepcopy(module).eval()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LSTMBody):
                setattr(parent, name, PaddedLSTM(child))
    return module


@contextlib.contextmanager
def quiet(*loggers: str):
    """Warnings off and `loggers` ("" = the root logger) at ERROR for the duration: the exporter's
    and the quantizer's advice lines are not for the user of `encoderflow export`."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    try:
        for name in loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def to_onnx(graph: nn.Module, path: Path, max_length: int, pad_id: int, output_names: tuple[str, ...],
            what: str) -> int:
    """Export `graph` (ClassifierGraph or EmbeddingGraph) to `path`, batch and length dynamic
    (length up to max_length, the longest row tokenization leaves); returns the opset.
    Any exporter failure is a one-line DataError naming `what`."""
    if max_length < 2:
        raise DataError(f"{what}: max_length {max_length} is too short to export (need >= 2)")
    T = min(8, max_length)  # example rows: one full, one padded (the masking paths are traced)
    ids = torch.full((2, T), 5, dtype=torch.long)
    mask = torch.ones((2, T), dtype=torch.long)
    ids[1, T - 1], mask[1, T - 1] = pad_id, 0
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=max_length)
    dims = {0: batch, 1: length}
    try:
        with quiet("torch.onnx"), torch.no_grad():  # "torchvision is not installed" and similar notes
            program = torch.onnx.export(graph.eval(), (ids, mask), dynamo=True, verbose=False,
                                        input_names=["input_ids", "attention_mask"],
                                        output_names=list(output_names),
                                        dynamic_shapes={"input_ids": dims, "attention_mask": dims})
            program.save(str(path), external_data=False)
    except Exception as e:  # noqa: BLE001 - torch.export / onnxscript raise many types
        raise DataError(f"{what}: ONNX export failed ({first_line(e, 300, with_type=True)})") from None
    return int(next(o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")))
