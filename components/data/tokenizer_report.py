"""reports/tokenizer.json: vocabulary, [UNK] rate and token-length statistics per split.

    report = build_report(tok, cfg.tokenize, {split: (length_histogram, unk_count)}, sha256)

Lengths count input_ids per text, [CLS] and [SEP] included; the statistics come from length
histograms (data/length_stats.py), so no step holds one number per text.
"""

from __future__ import annotations

import numpy as np

from components.core.config import TokenizeConfig
from components.data.length_stats import add_hist as _add_hist
from components.data.length_stats import hist_stats
from components.data.tokenizer_train import SPECIAL_TOKENS

TRAIN_SPLITS = ("train", "unlabeled")  # the only text the tokenizer may learn from (+ corpus)


def split_stats(lengths: np.ndarray, unk: int, max_length: int) -> dict:
    """Report numbers for one split from its lengths (incl. [CLS] and [SEP]); the stage
    itself uses `hist_stats` on length histograms, which gives the same numbers.

    >>> split_stats(np.array([4, 6]), 1, max_length=5)["truncation_rate"]
    0.5
    """
    return hist_stats(np.bincount(np.asarray(lengths, dtype=np.int64)), unk, max_length)


def build_report(tok, cfg: TokenizeConfig, stats: dict[str, tuple[np.ndarray, int]], sha256: str,
                 trained_on: tuple[str, ...] = TRAIN_SPLITS) -> dict:
    """`stats`: split -> (length histogram, [UNK] count)."""
    splits = {s: hist_stats(hist, unk, cfg.max_length) for s, (hist, unk) in stats.items()}
    overall = np.zeros(0, dtype=np.int64)
    for hist, _ in stats.values():
        overall = _add_hist(overall, hist)
    return {
        "model": cfg.model,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_requested": cfg.vocab_size,
        "min_frequency": None if cfg.model == "unigram" else cfg.min_frequency,
        "lowercase": cfg.lowercase,
        "max_length": cfg.max_length,
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
        "trained_on": list(trained_on),
        "tokenizer_sha256": sha256,
        "splits": splits,
        "overall": hist_stats(overall, sum(unk for _, unk in stats.values()), cfg.max_length),
        "definitions": {
            "tokens": "content tokens, without the [CLS]/[SEP] every text gets",
            "unk_rate": "[UNK] tokens / content tokens",
            "mean_tokens, p95_tokens, max_tokens": "len(input_ids) per text, incl. [CLS] and [SEP]",
            "truncation_rate": "share of texts with len(input_ids) > max_length",
        },
    }
