"""Token-id lists -> padded tensors, and a model run over length-sorted bounded batches.

The torch half of model/tokens.py: `pad_batch` turns the id lists of one batch into
(input_ids, attention_mask), `run_batches` applies a model to every row in the batches of
tokens.batch_rows and puts the results back in input order. Used by training's collators
(model/cls_data.py, model/lit_biencoder.py) and by inference (TextClassifier, BiEncoder).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from components.model.tokens import PAD_MULTIPLE, TOKENS_PER_ROW, batch_rows


def pad_batch(seqs: list[list[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row, rounded up to `multiple`: (input_ids [B, T] long, attention_mask [B, T] bool).

    >>> pad_batch([[2, 5, 3], [2, 3]], 0)[0].tolist()
    [[2, 5, 3], [2, 3, 0]]
    >>> pad_batch([[2, 5, 3], [2, 3]], 0, multiple=4)[1].tolist()
    [[True, True, True, False], [True, True, False, False]]
    """
    ids = pad_sequence([torch.as_tensor(s, dtype=torch.long) for s in seqs], batch_first=True,
                       padding_value=pad_id)  # [B, longest]
    width = -(-ids.shape[1] // multiple) * multiple
    ids = F.pad(ids, (0, width - ids.shape[1]), value=pad_id)  # [B, T]
    lengths = torch.tensor([len(s) for s in seqs])  # [B]
    mask = torch.arange(width)[None, :] < lengths[:, None]  # [B, T] bool
    return ids, mask


def run_batches(seqs: list[list[int]], pad_id: int, batch_size: int, fn) -> np.ndarray:
    """fn(ids [b, T], mask [b, T]) -> [b, D] over token-id rows in length-sorted, bounded
    batches (tokens.batch_rows), under inference_mode; float32 [N, D] with rows in input order."""
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
