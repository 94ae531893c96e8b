"""Token ids for the ONNX pyfunc without torch: the bounded encode and numpy padding.

Truncation, the pair separator and length-sorted batches are components/model/tokens.py's (a
torch-free leaf, shipped with this file), the very functions the torch classifier uses, so an
exported model sees exactly the ids its torch twin sees; the parity tests compare the two.
"""

from __future__ import annotations

import numpy as np

from components.model.tokens import (  # noqa: F401 - re-exported for the ONNX pyfunc
    PAD_MULTIPLE,
    TOKENS_PER_ROW,
    batch_rows,
    sep_token_id,
    truncate,
    truncate_pair,
)


# Serving bound: before tokenizing, a text is cut to CHARS_PER_TOKEN * (max_length + MARGIN)
# characters, since only its first max_length tokens are kept: a 10 MB request body is then
# milliseconds of tokenizer work instead of seconds (measured: `mlflow models serve` hit its
# 60 s request timeout on one 10 MiB text on a loaded CPU). The ids stay those of the whole
# text: a cut side that still yields >= max_length + MARGIN tokens keeps its first max_length
# from words before the cut (normalization and pre-tokenization are local; the cut word's
# pieces come last); a cut side with fewer (long whitespace runs, one giant word) is
# tokenized again whole.
CHARS_PER_TOKEN = 32
MARGIN = 64


def encode(tokenizer, texts: list, max_length: int, sep_id: int | None = None) -> list[list[int]]:
    """Token ids of each text (pair, with `sep_id`: each (text, text_pair) tuple), truncated as
    training truncates them (truncate / truncate_pair), each text read up to the serving bound."""
    pair = sep_id is not None
    limit = CHARS_PER_TOKEN * (max_length + MARGIN)
    rows = [tuple(t) if pair else (t,) for t in texts]  # the sides of each input
    encs = tokenizer.encode_batch([tuple(s[:limit] for s in row) if pair else row[0][:limit] for row in rows])

    def short_cut(row, enc) -> bool:  # a side was cut and gave too few tokens to trust the cut
        return any(len(side) > limit and enc.sequence_ids.count(k) < max_length + MARGIN
                   for k, side in enumerate(row))

    redo = [i for i, (row, enc) in enumerate(zip(rows, encs)) if short_cut(row, enc)]
    for i, enc in zip(redo, tokenizer.encode_batch([rows[i] if pair else rows[i][0] for i in redo])):
        encs[i] = enc
    if pair:
        return [truncate_pair(e.ids, max_length, sep_id) for e in encs]
    return [truncate(e.ids, max_length) for e in encs]


def pad_rows(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest row, rounded up to PAD_MULTIPLE: (input_ids, attention_mask),
    both int64 [B, T] (the exported graph's inputs; mask 1 = real token). An empty row gets
    one pad token, as in classifier.run_batches (every row needs a real position).

    >>> ids, mask = pad_rows([[2, 5, 3], []], 0); ids.tolist(), mask.sum(1).tolist(), ids.shape
    ([[2, 5, 3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]], [3, 1], (2, 8))
    """
    seqs = [s or [pad_id] for s in seqs]
    width = -(-max(len(s) for s in seqs) // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask
