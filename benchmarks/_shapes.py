"""Student shapes of the student benchmarks: `d256x2` (a transformer), `cnn-d256x1`, `lstm-d128x2`."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Shape:
    """A student architecture: family, hidden size, layers (heads = hidden / 64, FFN = 4 x hidden)."""

    family: str
    hidden: int
    layers: int

    @property
    def name(self) -> str:
        base = f"d{self.hidden}x{self.layers}"
        return base if self.family == "transformer" else f"{self.family}-{base}"

    def overrides(self) -> list[str]:
        out = [f"model.family={self.family}", f"model.hidden_size={self.hidden}",
               f"model.num_layers={self.layers}"]
        if self.family == "transformer":
            out += [f"model.num_heads={max(1, self.hidden // 64)}", f"model.ffn_size={4 * self.hidden}"]
        return out


def parse_shape(spec: str) -> Shape:
    """`d256x2` (a transformer), `cnn-d256x1`, `lstm-d128x2`, `transformer-d128x4`.

    >>> parse_shape("d256x4"), parse_shape("cnn-d128x1").name
    (Shape(family='transformer', hidden=256, layers=4), 'cnn-d128x1')
    """
    import re

    m = re.fullmatch(r"(?:(transformer|cnn|lstm)-)?d(\d+)x(\d+)", spec.strip())
    if not m:
        raise SystemExit(f"error: --shapes: {spec!r} is not a shape (expected e.g. d256x2, cnn-d256x1, "
                         "lstm-d128x2)")
    return Shape(m[1] or "transformer", int(m[2]), int(m[3]))


def shape_of(cfg) -> Shape:
    return Shape(cfg.model.family, cfg.model.hidden_size, cfg.model.num_layers)
