"""The non-transformer encoder bodies: bidirectional LSTM, multi-width CNN and static embeddings.

Same contract as TransformerBody in encoder.py: `forward(input_ids [B, T],
mask [B, T] bool) -> states [B, T, H]`, an `embeddings` module (group 0) with
a `.tok` nn.Embedding, and `layer_groups()` bottom to top (num_layers + 1).
Neither family needs position embeddings (recurrence / convolution see order).
The static body (`StaticBody`) has no context at all: a token's state is its embedding
(model2vec-style; Encoder adds the MLP over the pooled vector, see encoder.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


class TokenEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_id)
        nn.init.normal_(self.tok.weight, 0.0, cfg.hidden_size ** -0.5)
        with torch.no_grad():
            self.tok.weight[cfg.pad_id].zero_()
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, input_ids):
        return self.drop(self.tok(input_ids))  # [B, T, H]


class LSTMBody(nn.Module):
    """Stacked bidirectional LSTM, H/2 units per direction, one nn.LSTM per layer
    (so layers can be frozen one by one). Sequences are packed by length, so pads
    never enter the recurrence; a final LayerNorm matches the transformer's output scale.
    """

    def __init__(self, cfg):
        super().__init__()
        H = cfg.hidden_size
        self.embeddings = TokenEmbeddings(cfg)
        self.layers = nn.ModuleList(
            nn.LSTM(H, H // 2, batch_first=True, bidirectional=True) for _ in range(cfg.num_layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.ln_f = nn.LayerNorm(H)

    def forward(self, input_ids, mask):
        B, T = input_ids.shape
        x = self.embeddings(input_ids)  # [B, T, H]
        lengths = mask.sum(1).clamp(min=1).cpu()  # right padding: real tokens are a prefix
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        for i, lstm in enumerate(self.layers):
            if i:  # dropout between layers, on the packed data [sum(lengths), H]
                packed = PackedSequence(self.drop(packed.data), packed.batch_sizes,
                                        packed.sorted_indices, packed.unsorted_indices)
            packed, _ = lstm(packed)
        out, _ = pad_packed_sequence(packed, batch_first=True, total_length=T)  # [B, T, H], pads = 0
        return self.ln_f(out)

    def layer_groups(self):
        groups = [self.embeddings, *self.layers]
        groups[-1] = nn.ModuleList([self.layers[-1], self.ln_f])
        return groups


class ConvLayer(nn.Module):
    """Pre-LN residual layer: parallel 'same' convolutions of each width, GELU,
    concatenated and projected back to H (1x1)."""

    def __init__(self, cfg):
        super().__init__()
        H = cfg.hidden_size
        self.ln = nn.LayerNorm(H)
        self.convs = nn.ModuleList(nn.Conv1d(H, H, k, padding=k // 2) for k in cfg.kernel_sizes)
        self.proj = nn.Linear(len(cfg.kernel_sizes) * H, H)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask):
        h = (self.ln(x) * mask[:, :, None]).transpose(1, 2)  # [B, H, T]; pads zeroed = same as conv padding
        h = torch.cat([F.gelu(conv(h)) for conv in self.convs], dim=1)  # [B, nK*H, T]
        return x + self.drop(self.proj(h.transpose(1, 2)))  # [B, T, H]


class CNNBody(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = TokenEmbeddings(cfg)
        self.layers = nn.ModuleList(ConvLayer(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden_size)

    def forward(self, input_ids, mask):
        x = self.embeddings(input_ids)  # [B, T, H]
        for layer in self.layers:
            x = layer(x, mask)
        return self.ln_f(x)  # [B, T, H]

    def layer_groups(self):
        groups = [self.embeddings, *self.layers]
        groups[-1] = nn.ModuleList([self.layers[-1], self.ln_f])
        return groups


class StaticBody(nn.Module):
    """Static token embeddings: state[b, t] = E[ids[b, t]] (zero at pads), no positions and no
    mixing between tokens, so a text's mean-pooled vector is the mean of its tokens' rows
    (what model2vec serves). E usually starts from model2vec's distillation of the teacher
    checkpoint (`load_static_embeddings`). One layer group: the embeddings."""

    def __init__(self, cfg):
        super().__init__()
        self.embeddings = TokenEmbeddings(cfg)

    def forward(self, input_ids, mask):
        return self.embeddings(input_ids) * mask[:, :, None]  # [B, T, H]

    def layer_groups(self):
        return [self.embeddings]
