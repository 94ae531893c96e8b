"""Token ids for the ONNX pyfunc without torch: truncation, length-sorted batches, numpy padding.

The same rules as components/model/classifier.py (truncate, truncate_pair, sep_token_id,
batch_rows, PAD_MULTIPLE, TOKENS_PER_ROW), so an exported model sees exactly the ids its
torch twin sees; the parity tests compare the two. They are written out here because
classifier.py imports torch at module level and this file ships in the torch-free serving
environment. TODO(merge): the torch-free leaf components/model/tokens.py (branch
refactor-training) holds the same functions; import them from there once it is on main,
and keep only `pad_rows` here.
"""

from __future__ import annotations

import numpy as np

from components.core.errors import DataError

# Inference batches are length-sorted, padded to a multiple of PAD_MULTIPLE tokens and hold at
# most batch_size * TOKENS_PER_ROW padded tokens: few distinct tensor shapes, bounded memory
# (see classifier.py for the measurement behind these two numbers).
PAD_MULTIPLE = 8
TOKENS_PER_ROW = 64


def truncate(ids: list[int], max_length: int) -> list[int]:
    """Cut to max_length tokens, keeping the final token (the [SEP] the post-processor added).

    >>> truncate([2, 10, 11, 12, 3], 4)
    [2, 10, 11, 3]
    """
    return list(ids) if len(ids) <= max_length else list(ids[: max_length - 1]) + [ids[-1]]


def truncate_pair(ids: list[int], max_length: int, sep_id: int) -> list[int]:
    """pair: "[CLS] a [SEP] b [SEP]" to max_length tokens, longest side first; both [SEP]s stay.

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
        (a if len(a) > len(b) else b).pop()
    return [ids[0], *a, sep_id, *b, ids[-1]]


def sep_token_id(tok) -> int:
    """The id of the separator the pair template puts between the texts ([SEP] or </s>)."""
    for name in ("[SEP]", "</s>"):
        if tok.token_to_id(name) is not None:
            return int(tok.token_to_id(name))
    raise DataError("the tokenizer has no [SEP] token; the pair task needs one")


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
