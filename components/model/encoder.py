"""The text encoder: one plain nn.Module, four families (nanoGPT-style, one file).

    cfg = EncoderConfig.from_params(params.model, vocab_size=8000)
    enc = build_encoder(cfg)
    states, pooled = enc(input_ids, attention_mask)   # [B, T, H], [B, H]

Families (`cfg.family`):
- transformer: pre-LayerNorm blocks, fused QKV + attention (SDPA; explicit matmuls for
  bf16 on CPU, see `attention`), positions learned | sinusoidal | rotary, final LayerNorm;
  the MLM head ties its output projection to the input embedding. `selected_states`
  computes the last block at the masked positions only (what the MLM loss reads).
- lstm / cnn: see families.py (bidirectional LSTM; multi-width 1-D convolutions).
- static: token embeddings alone (families.StaticBody, usually model2vec's distillation of the
  teacher), mean-pooled, then an MLP of width ffn_size over the pooled vector (`post`;
  ffn_size 0 = none): pooled [B, ffn_size]. No positions, no attention: 10-100x faster.

Invariant shared by all families: outputs at real positions never depend on
padding positions (attention masks keys, LSTM packs, CNN zeroes pads before each
conv), and pooling only reads real positions. Masks are right-padded (a prefix
of True per row); every row must hold at least one real token.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from components.core.errors import ConfigError

if TYPE_CHECKING:
    from components.core.config import ModelConfig


FAMILIES = ("transformer", "lstm", "cnn", "static")


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild the module; saved as config.json."""

    family: str
    vocab_size: int
    pad_id: int
    hidden_size: int
    num_layers: int
    num_heads: int
    ffn_size: int
    bias: bool
    positions: str
    max_length: int
    pooling: str
    kernel_sizes: tuple[int, ...]
    dropout: float = 0.0
    # pair task only (transformer): a segment (token-type) embedding of `segments` rows; the
    # segment of a token is 1 after the first `sep_id` token ([CLS] a [SEP] -> 0, b [SEP] -> 1).
    # 0 = none: no parameters, and `to_dict` leaves both keys out (single_label files unchanged).
    segments: int = 0
    sep_id: int = -1

    def to_dict(self) -> dict:
        """asdict, without the segment keys while segments == 0 (config.json as before pairs)."""
        d = dataclasses.asdict(self)
        if not self.segments:
            del d["segments"], d["sep_id"]
        return d

    def __post_init__(self):
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        checks = [
            (self.family in FAMILIES, "family", " | ".join(FAMILIES)),
            (self.pooling in ("cls", "mean", "max"), "pooling", "cls | mean | max"),
            (self.positions in ("learned", "sinusoidal", "rotary"), "positions",
             "learned | sinusoidal | rotary"),
            (0 <= self.pad_id < self.vocab_size, "pad_id", f"an id below vocab_size {self.vocab_size}"),
            (0 <= self.dropout < 1, "dropout", "a value in [0, 1)"),
        ]
        if self.family == "transformer":
            checks.append((self.hidden_size % self.num_heads == 0, "num_heads",
                           f"a divisor of hidden_size ({self.hidden_size})"))
            if self.positions == "rotary":
                checks.append(((self.hidden_size // self.num_heads) % 2 == 0, "num_heads",
                               "an even head size (hidden_size / num_heads) for rotary positions"))
        if self.family == "lstm":
            checks.append((self.hidden_size % 2 == 0, "hidden_size", "an even size (two directions)"))
        if self.family == "cnn":
            checks.append((len(self.kernel_sizes) > 0 and all(k % 2 == 1 and k > 0 for k in self.kernel_sizes),
                           "kernel_sizes", "a non-empty list of odd sizes"))
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"model.{key}: expected {expected}, got {getattr(self, key)!r}")

    @classmethod
    def from_params(cls, model_cfg: "ModelConfig", vocab_size: int, pad_id: int = 0,
                    dropout: float = 0.0) -> "EncoderConfig":
        names = {f.name for f in fields(cls)} - {"vocab_size", "pad_id", "dropout", "segments", "sep_id"}
        kwargs = {name: getattr(model_cfg, name) for name in names}
        return cls(vocab_size=vocab_size, pad_id=pad_id, dropout=dropout, **kwargs)


# --------------------------------------------------------------------------- transformer


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos position table [length, dim] (Vaswani et al.).

    >>> sinusoidal_table(4, 6).shape
    torch.Size([4, 6])
    """
    pos = torch.arange(length, dtype=torch.float32)[:, None]  # [L, 1]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


def rotary_tables(length: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair-interleaved tables [length, head_dim] for rotary positions: with angles a_i of
    pair i = (x[2i], x[2i+1]), cos = (cos a_0, cos a_0, cos a_1, ...) and
    sin = (-sin a_0, sin a_0, -sin a_1, ...), so that apply_rotary is two multiplies.

    >>> c, s = rotary_tables(3, 4); c.shape, bool(s[0].abs().max() == 0)
    (torch.Size([3, 4]), True)
    """
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]  # [L, D/2]
    cos = torch.stack((angles.cos(), angles.cos()), -1).flatten(-2)  # [L, D]
    sin = torch.stack((-angles.sin(), angles.sin()), -1).flatten(-2)  # [L, D]
    return cos, sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x1, x2) of the last dim of x [..., D] by its angle:
    (x1 cos - x2 sin, x1 sin + x2 cos); cos / sin from rotary_tables, broadcast to x.
    Computed in x's dtype (bf16 under autocast) in three passes: swap, multiply, addcmul.
    """
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x2, x1, x4, x3, ...)
    return torch.addcmul(x * cos.to(x.dtype), swapped, sin.to(x.dtype))


def attention(q, k, v, key_mask, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd) + mask) v: q [B, nh, W, hd], k, v [B, nh, T, hd] -> [B, nh, W, hd];
    key_mask [B, 1, 1, T] bool (True = real key) or None.

    On CPU in bf16 (autocast) explicit matmuls run forward+backward about 2x faster than
    SDPA's CPU flash kernel (torch 2.13, one Zen 4 core, [32, 4, 128, 64]: 73 vs 150 ms;
    also at T = 64 and 256); in fp32 SDPA is as fast or faster, so fp32 and GPUs keep SDPA.
    The explicit path materialises [B, nh, W, T] scores.
    """
    if q.device.type != "cpu" or q.dtype == torch.float32:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, nh, W, T]
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))  # every row keeps >= 1 real key
    probs = F.dropout(scores.softmax(-1), dropout_p) if dropout_p else scores.softmax(-1)
    return probs @ v  # [B, nh, W, hd]


class Embeddings(nn.Module):
    """Token (+ learned or sinusoidal position) embeddings: layer group 0."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_id)
        self.pos = nn.Embedding(cfg.max_length, cfg.hidden_size) if cfg.positions == "learned" else None
        if cfg.positions == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(cfg.max_length, cfg.hidden_size), persistent=False)
        else:
            self.table = None
        self.drop = nn.Dropout(cfg.dropout)
        self.sep_id = cfg.sep_id
        self.seg = nn.Embedding(cfg.segments, cfg.hidden_size) if cfg.segments else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        x = self.tok(input_ids)  # [B, T, H]
        if self.seg is not None:  # pair: segment 1 after the first [SEP]
            is_sep = (input_ids == self.sep_id).long()  # [B, T]
            seg = (is_sep.cumsum(1) - is_sep).clamp(max=self.seg.num_embeddings - 1)  # [B, T]
            x = x + self.seg(seg)
        if self.pos is not None:
            x = x + self.pos.weight[:T]  # [T, H] broadcast
        elif self.table is not None:
            x = x + self.table[:T].to(x.dtype)
        return self.drop(x)


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.nh, self.hd = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.bias)  # fused QKV
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.bias)
        self.p = cfg.dropout
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, key_mask, rope=None, query_idx=None):
        """x [B, T, H] -> [B, T, H]; with query_idx [B, W] only those positions of each row
        query (keys / values still cover all T) -> [B, W, H]."""
        B, T, H = x.shape
        if query_idx is None:
            qkv = self.qkv(x).view(B, T, 3, self.nh, self.hd)  # [B, T, 3, nh, hd]
            if rope is not None:  # rotate q and k together; tables [T, 1, 1, hd] broadcast
                q, k = apply_rotary(qkv[:, :, :2], *rope).unbind(2)  # 2 x [B, T, nh, hd]
                v = qkv[:, :, 2]
            else:
                q, k, v = qkv.unbind(2)
        else:  # the fused weight's rows are [q; k; v]: project q at W positions, k and v at all T
            W, w, b = query_idx.shape[1], self.qkv.weight, self.qkv.bias
            q = F.linear(gather_rows(x, query_idx), w[:H], None if b is None else b[:H])
            q = q.view(B, W, 1, self.nh, self.hd)  # [B, W, 1, nh, hd]
            kv = F.linear(x, w[H:], None if b is None else b[H:]).view(B, T, 2, self.nh, self.hd)
            k, v = kv[:, :, :1], kv[:, :, 1]
            if rope is not None:  # q's tables at its own positions: [B, W, 1, 1, hd]
                q, k = apply_rotary(q, rope[0][query_idx], rope[1][query_idx]), apply_rotary(k, *rope)
            q, k = q[:, :, 0], k[:, :, 0]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, nh, T or W, hd]
        # key_mask [B, 1, 1, T]: True = may attend; pads are never attended to.
        y = attention(q, k, v, key_mask, self.p if self.training else 0.0)  # [B, nh, T or W, hd]
        y = y.transpose(1, 2).reshape(B, -1, H)
        return self.drop(self.proj(y))


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, T, H], idx [B, W] positions -> [B, W, H] (x[b, idx[b, w]])."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.hidden_size, bias=cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden_size, bias=cfg.bias)
        self.fc = nn.Linear(cfg.hidden_size, cfg.ffn_size, bias=cfg.bias)
        self.proj = nn.Linear(cfg.ffn_size, cfg.hidden_size, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, key_mask, rope=None, query_idx=None):
        """[B, T, H] -> [B, T, H], or -> [B, W, H] at positions query_idx [B, W] only."""
        res = x if query_idx is None else gather_rows(x, query_idx)
        x = res + self.attn(self.ln1(x), key_mask, rope, query_idx)
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)))))


class TransformerBody(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden_size, bias=cfg.bias)
        if cfg.positions == "rotary":
            cos, sin = rotary_tables(cfg.max_length, cfg.hidden_size // cfg.num_heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.rope_cos = self.rope_sin = None
        self._init(cfg)

    def _init(self, cfg: EncoderConfig):
        # Linear: N(0, 0.02); residual outputs scaled by 1/sqrt(2L) (GPT-2) so the residual
        # stream does not grow with depth. Token embedding: N(0, 1/sqrt(H)) ("scaled"): with the
        # tied MLM decoder, unit-variance final states then give unit-variance logits.
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            std = 0.02
            if name.endswith("proj.weight"):
                std = 0.02 / math.sqrt(2 * cfg.num_layers)
            elif name == "embeddings.tok.weight":
                std = cfg.hidden_size ** -0.5
            nn.init.normal_(p, 0.0, std)
            if name == "embeddings.tok.weight":
                with torch.no_grad():
                    p[cfg.pad_id].zero_()
        for name, p in self.named_parameters():
            if p.dim() == 1 and "ln" not in name:
                nn.init.zeros_(p)  # Linear biases

    def forward(self, input_ids, attention_mask, select=None):
        """States [B, T, H]; with select [B, T] bool only the selected ones, [N, H] in row-major
        order (== states[select]): the last block then runs queries, FFN and the final norm at
        those positions only (its keys / values still see every position)."""
        T = input_ids.shape[1]
        key_mask = attention_mask[:, None, None, :]  # [B, 1, 1, T]
        if input_ids.device.type == "cpu" and not torch.compiler.is_exporting() and bool(attention_mask.all()):
            key_mask = None  # packed blocks have no padding: skip masking (no sync cost on CPU)
        rope = None
        if self.rope_cos is not None:
            rope = (self.rope_cos[:T, None, None], self.rope_sin[:T, None, None])  # [T, 1, 1, hd]
        x = self.embeddings(input_ids)  # [B, T, H]
        for block in self.blocks if select is None else self.blocks[:-1]:
            x = block(x, key_mask, rope)
        if select is None:
            return self.ln_f(x)  # [B, T, H]
        counts = select.sum(1)  # [B]
        width = int(counts.max())
        # [B, W]: each row's selected positions first, in order (stable), then filler positions
        idx = torch.argsort((~select).to(torch.uint8), dim=1, stable=True)[:, :width]
        keep = torch.arange(width, device=select.device)[None, :] < counts[:, None]  # [B, W]
        x = self.blocks[-1](x, key_mask, rope, query_idx=idx)  # [B, W, H]
        return self.ln_f(x[keep])  # [N, H]

    def layer_groups(self) -> list[nn.Module]:
        groups: list[nn.Module] = [self.embeddings, *self.blocks]
        groups[-1] = nn.ModuleList([self.blocks[-1], self.ln_f])  # top group owns the final norm
        return groups


# --------------------------------------------------------------------------- encoder


def pool(states: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence vector [B, H] from states [B, T, H] over real positions (mask [B, T])."""
    if how == "cls":
        return states[:, 0]
    m = mask[:, :, None]  # [B, T, 1]
    if how == "mean":
        return (states * m).sum(1) / m.sum(1).clamp(min=1).to(states.dtype)
    return states.masked_fill(~m, float("-inf")).amax(1).nan_to_num(0.0, neginf=0.0)


class Encoder(nn.Module):
    """(input_ids [B, T], attention_mask [B, T]) -> (states [B, T, H], pooled [B, H])."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.post = None  # static only: the MLP over the pooled vector
        if cfg.family == "transformer":
            self.body = TransformerBody(cfg)
        else:
            from components.model.families import CNNBody, LSTMBody, StaticBody

            self.body = {"lstm": LSTMBody, "cnn": CNNBody, "static": StaticBody}[cfg.family](cfg)
            if cfg.family == "static" and cfg.ffn_size:
                self.post = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.ffn_size), nn.GELU())

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per-token states [B, T, H] (no pooling; what the MLM head reads)."""
        if self.cfg.family == "transformer" and input_ids.shape[1] > self.cfg.max_length:
            raise ValueError(f"sequence length {input_ids.shape[1]} > model max_length {self.cfg.max_length}")
        return self.body(input_ids, attention_mask.bool())

    def selected_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        select: torch.Tensor) -> torch.Tensor:
        """token_states(...)[select] -> [N, H], computed sparsely where the family allows it
        (transformer: the last block only queries at selected positions; what the MLM loss reads)."""
        if self.cfg.family != "transformer":
            return self.token_states(input_ids, attention_mask)[select]
        if input_ids.shape[1] > self.cfg.max_length:
            raise ValueError(f"sequence length {input_ids.shape[1]} > model max_length {self.cfg.max_length}")
        return self.body(input_ids, attention_mask.bool(), select=select)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        states = self.token_states(input_ids, attention_mask)  # [B, T, H]
        pooled = pool(states, attention_mask.bool(), self.cfg.pooling)  # [B, H]
        return states, (pooled if self.post is None else self.post(pooled))  # [B, output_size]

    def layer_groups(self) -> list[nn.Module]:
        """Bottom (embeddings) to top: num_layers + 1 groups; the last owns the final norm
        (static: the embeddings, then the MLP when there is one)."""
        return self.body.layer_groups() + ([self.post] if self.post is not None else [])

    @property
    def output_size(self) -> int:
        return self.cfg.ffn_size if self.post is not None else self.cfg.hidden_size

    @property
    def input_embedding(self) -> nn.Embedding:
        return self.body.embeddings.tok


def build_encoder(cfg: EncoderConfig) -> Encoder:
    return Encoder(cfg)


def add_segments(encoder: Encoder, sep_id: int) -> bool:
    """pair: give a (pretrained) transformer a 2-row segment embedding, initialised to ZERO so
    the first forward pass equals the pretrained one; False (nothing added) for lstm/cnn, which
    read the pair through its [SEP] token only."""
    if encoder.cfg.family != "transformer" or encoder.cfg.segments:
        return bool(encoder.cfg.segments)
    encoder.cfg = dataclasses.replace(encoder.cfg, segments=2, sep_id=int(sep_id))
    emb = encoder.body.embeddings
    emb.sep_id = int(sep_id)
    emb.seg = nn.Embedding(2, encoder.cfg.hidden_size).to(emb.tok.weight.device)
    nn.init.zeros_(emb.seg.weight)
    return True


class MLMHead(nn.Module):
    """Hidden states at masked positions [N, H] -> vocab logits [N, V] (used by lit_mlm only).

    transform (dense + GELU + LayerNorm), then a decoder tied to the input embedding for
    the transformer family; lstm / cnn get their own projection.
    """

    def __init__(self, encoder: Encoder):
        super().__init__()
        cfg = encoder.cfg
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.ln = nn.LayerNorm(cfg.hidden_size)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.tied = cfg.family == "transformer"
        # Tied: keep a reference outside the module tree so the weight is not registered twice.
        self._embedding = [encoder.input_embedding] if self.tied else None
        self.decoder = None if self.tied else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        nn.init.normal_(self.dense.weight, 0.0, 0.02)
        nn.init.zeros_(self.dense.bias)
        if self.decoder is not None:
            nn.init.normal_(self.decoder.weight, 0.0, cfg.hidden_size ** -0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.ln(F.gelu(self.dense(h)))  # [N, H]
        weight = self._embedding[0].weight if self.tied else self.decoder.weight  # [V, H]
        return F.linear(h, weight, self.bias)  # [N, V]
