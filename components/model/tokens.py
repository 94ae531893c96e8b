"""Texts -> bounded, length-sorted batches of token-id lists. Pure python + tokenizers (no torch).

Everything a model needs between the tokenizer and its tensors, torch-free so that a serving
path without torch (ONNX) imports the same functions training and TextClassifier use, and so
gets the same ids and the same batches:

    tok = tokenizers.Tokenizer.from_file("models/finetuned/tokenizer.json")
    seqs = encode(tok, ["a fine film", "dull"], max_length=128)   # ids per text, [CLS] .. [SEP]
    for rows in batch_rows([len(s) for s in seqs], 64, 64 * TOKENS_PER_ROW):
        ...  # pad seqs[i] for i in rows to a multiple of PAD_MULTIPLE (model/batching.py)

Why the cut is ours and not the tokenizers library's (`Tokenizer.enable_truncation`):
data/tokenized stores ids UNtruncated (model.max_length is a model param, not a tokenize one),
so training cuts id lists, not texts; inference cuts with the same function, so training and
serving cannot drift. For pair ids the library's "longest_first" also differs from ours on
ties (it gives the odd token to the other side: a 5 + 5 token pair cut to 8 keeps 2 + 3 there,
3 + 2 here), and a model's ids must stay the ones it was trained on.
"""

from __future__ import annotations

from components.core.errors import DataError

# Inference batches are length-sorted, padded to a multiple of PAD_MULTIPLE tokens and hold
# at most batch_size * TOKENS_PER_ROW padded tokens (long texts come in smaller batches).
# Tensor sizes are then bounded and few, and so is batch prediction's peak RSS as the input
# grows (benchmarks/predict_load.py: 737 -> 904 MiB from 10k to 200k texts). With one width
# per batch and full batches of long texts, glibc's heap kept ever new freed sizes and
# `encoderflow predict` grew from 0.7 to 1.3 GB over 100k texts.
PAD_MULTIPLE = 8
TOKENS_PER_ROW = 64


def truncate(ids: list[int], max_length: int) -> list[int]:
    """Cut to max_length tokens, keeping the final token (the [SEP] the post-processor added).

    >>> truncate([2, 10, 11, 12, 3], 4)
    [2, 10, 11, 3]
    """
    return list(ids) if len(ids) <= max_length else list(ids[: max_length - 1]) + [ids[-1]]


def truncate_pair(ids: list[int], max_length: int, sep_id: int) -> list[int]:
    """pair: cut "[CLS] a [SEP] b [SEP]" to max_length tokens longest-first (one token at a time
    from the longer side; on a tie from b); both [SEP]s stay. Ids without a [SEP] before the
    last token fall back to `truncate`.

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


def sep_token_id(tok) -> int:
    """The id of the separator the pair template puts between the texts ([SEP] or </s>)."""
    for name in ("[SEP]", "</s>"):
        if tok.token_to_id(name) is not None:
            return int(tok.token_to_id(name))
    raise DataError("the tokenizer has no [SEP] token; the pair task needs one")


def encode_texts(tok, texts: list) -> list[list[int]]:
    """Token ids per text with the tokenizer's post-processing ([CLS] .. [SEP]), not truncated:
    the ids the tokenize stage writes to data/tokenized for the same tokenizer. pair: (a, b)
    tuples (or lists) give "[CLS] a [SEP] b [SEP]"."""
    texts = [tuple(t) if isinstance(t, (tuple, list)) else t for t in texts]
    return [e.ids for e in tok.encode_batch(texts)] if len(texts) else []


def encode(tok, texts: list, max_length: int, pair: bool = False) -> list[list[int]]:
    """Token ids per text, cut to max_length (`truncate`; pair: (a, b) tuples, `truncate_pair`):
    the ids a model trained with this tokenizer and max_length saw."""
    seqs = encode_texts(tok, [tuple(t) for t in texts] if pair else list(texts))
    if pair:
        sep = sep_token_id(tok)
        return [truncate_pair(s, max_length, sep) for s in seqs]
    return [truncate(s, max_length) for s in seqs]


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
