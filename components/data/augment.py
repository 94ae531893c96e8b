"""Word-level text augmentation for distillation (Tang et al. 2019, "Distilling
task-specific knowledge from BERT into simple neural networks", section 3.3).

The scheme `augment_words` applies to one example, in this order:
1. for each word draw u ~ U[0, 1): u < p_mask -> the mask token;
   p_mask <= u < p_mask + p_delete -> delete it. The two are exclusive, as
   masking and POS-guided replacement are in the paper. We skip the paper's POS
   replacement (it needs a tagger); deletion (Wei & Zou 2019, EDA) takes its
   slot. If every word was deleted, one original word, drawn at random, is kept.
2. swap two distinct random positions, Binomial(len(words), p_swap) times (EDA).
3. with probability p_ngram replace the example by an n-gram of it: a contiguous
   span of n words, n uniform in ngram_range (capped at the length), start uniform.
Defaults are the paper's (p_mask 0.1, p_ngram 0.25, n in 1..5), with 0.1 for
deletion (the paper's p_pos) and p_swap 0.1. Outputs are not deduplicated and may
equal the input.

Words: whitespace tokens, except that every character of a script written
without spaces (Han, kana, CJK punctuation, fullwidth forms) is a word of its own,
so Chinese or Japanese text is augmented character by character, also inside
mixed text ("买了iPhone很好" -> 买 了 iPhone 很 好). `join` puts no space between
two such characters and one space elsewhere, so spaced text round-trips up to
whitespace, and unspaced text exactly. (No length threshold: a long English word
stays one word.) Thai, Lao, Khmer and Myanmar are not split: their characters
combine, and a code point is not a letter there.

Randomness: a numpy Generator per (seed, text index, copy), so results depend
only on those, not on the other texts in the list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_UNSPACED = ("\u3001-\u303f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
             "\uf900-\ufaff\uff01-\uffef\U00020000-\U0003134f")
_WORD = re.compile(f"[{_UNSPACED}]|[^\\s{_UNSPACED}]+")
_IS_UNSPACED = re.compile(f"[{_UNSPACED}]")


def words(text: str) -> list[str]:
    """Split a text into the units augmentation works on.

    >>> words("a  good film"), words("这个很好。"), words("买了iPhone 12很好")
    (['a', 'good', 'film'], ['这', '个', '很', '好', '。'], ['买', '了', 'iPhone', '12', '很', '好'])
    """
    return _WORD.findall(text)


def join(units: Sequence[str]) -> str:
    """Inverse of `words`: no space between two unspaced-script characters, one elsewhere.

    >>> join(['这', '个', '[MASK]', '好']), join(['a', 'good', 'film'])
    ('这个 [MASK] 好', 'a good film')
    """
    out: list[str] = []
    for i, w in enumerate(units):
        if i and not (_IS_UNSPACED.fullmatch(units[i - 1]) and _IS_UNSPACED.fullmatch(w)):
            out.append(" ")
        out.append(w)
    return "".join(out)


def mask_or_delete(units: Sequence[str], p_mask: float, p_delete: float, rng: np.random.Generator,
                   mask_token: str = "[MASK]") -> list[str]:
    """Step 1: each word is masked (prob p_mask) or else deleted (prob p_delete).

    Never returns [] for a non-empty input (one original word survives).

    >>> mask_or_delete(["a", "b", "c"], 1.0, 0.0, np.random.default_rng(0))
    ['[MASK]', '[MASK]', '[MASK]']
    >>> len(mask_or_delete(["a", "b", "c"], 0.0, 1.0, np.random.default_rng(0)))
    1
    """
    if not units:
        return []
    u = rng.random(len(units))  # [W] one draw per word decides mask / delete / keep
    out = [mask_token if x < p_mask else w for w, x in zip(units, u) if not p_mask <= x < p_mask + p_delete]
    return out or [units[int(rng.integers(len(units)))]]


def random_mask(units: Sequence[str], p: float, rng: np.random.Generator, mask_token: str = "[MASK]") -> list[str]:
    """Replace each word by `mask_token` with probability p.

    >>> random_mask(["a", "b"], 0.0, np.random.default_rng(0))
    ['a', 'b']
    """
    return mask_or_delete(units, p, 0.0, rng, mask_token)


def random_deletion(units: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """Delete each word with probability p (one word always survives).

    >>> random_deletion(["a", "b"], 0.0, np.random.default_rng(0))
    ['a', 'b']
    """
    return mask_or_delete(units, 0.0, p, rng)


def random_swap(units: Sequence[str], n_swaps: int, rng: np.random.Generator) -> list[str]:
    """Swap two distinct random positions, n_swaps times (a permutation of the words).

    >>> sorted(random_swap(["a", "b", "c"], 5, np.random.default_rng(0)))
    ['a', 'b', 'c']
    """
    out = list(units)
    if len(out) < 2:
        return out
    for _ in range(n_swaps):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def ngram_sample(units: Sequence[str], rng: np.random.Generator, ngram_range: tuple[int, int] = (1, 5)) -> list[str]:
    """A random contiguous span of n words, n uniform in ngram_range (at most len(units)).

    >>> ngram_sample(["a", "b", "c", "d"], np.random.default_rng(0), (4, 9))
    ['a', 'b', 'c', 'd']
    """
    if not units:
        return []
    hi = min(ngram_range[1], len(units))
    lo = min(ngram_range[0], hi)
    n = int(rng.integers(lo, hi + 1))
    start = int(rng.integers(len(units) - n + 1))
    return list(units[start:start + n])


def augment_words(units: Sequence[str], rng: np.random.Generator, *, mask_token: str = "[MASK]",
                  p_mask: float = 0.1, p_delete: float = 0.1, p_swap: float = 0.1, p_ngram: float = 0.25,
                  ngram_range: tuple[int, int] = (1, 5)) -> list[str]:
    """The whole scheme (see the module docstring) on one example's words.

    >>> augment_words(["a", "b", "c"], np.random.default_rng(0), p_mask=0, p_delete=0, p_swap=0, p_ngram=0)
    ['a', 'b', 'c']
    """
    out = mask_or_delete(units, p_mask, p_delete, rng, mask_token)
    out = random_swap(out, int(rng.binomial(len(out), p_swap)), rng)
    return ngram_sample(out, rng, ngram_range) if rng.random() < p_ngram else out


def _check(copies, seed, mask_token, probs: dict[str, float], ngram_range) -> None:
    """One-line ValueError for the first bad argument of `augment`."""
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 0:
        raise ValueError(f"augment: copies must be an integer >= 0, got {copies!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"augment: seed must be an integer >= 0, got {seed!r}")
    if not isinstance(mask_token, str) or words(mask_token) != [mask_token]:
        raise ValueError(f"augment: mask_token must be one word (no spaces), got {mask_token!r}")
    for name, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augment: {name} must be in [0, 1], got {p!r}")
    if probs["p_mask"] + probs["p_delete"] > 1.0:
        raise ValueError("augment: p_mask + p_delete must be at most 1 (they share one draw per word)")
    lo, hi = ngram_range
    if not 1 <= lo <= hi:
        raise ValueError(f"augment: ngram_range must be (lo, hi) with 1 <= lo <= hi, got {ngram_range!r}")


def augment(texts: list[str], copies: int, seed: int, mask_token: str = "[MASK]", p_mask: float = 0.1,
            p_delete: float = 0.1, p_swap: float = 0.1, p_ngram: float = 0.25,
            ngram_range: tuple[int, int] = (1, 5)) -> list[tuple[int, str]]:
    """`copies` augmented versions of each text: [(source index, text)], by index then copy.

    Copy c of text i uses np.random.default_rng([seed, i, c]), so the same inputs
    and seed give the same output, and appending texts leaves earlier ones alone.
    An empty (or whitespace-only) text is a ValueError naming its index.

    >>> augment(["a good film", "这部电影很好"], 1, seed=0, p_delete=0, p_swap=0, p_ngram=0, p_mask=0)
    [(0, 'a good film'), (1, '这部电影很好')]
    >>> augment(["the film was a pure delight from start to end"], 2, seed=1)
    [(0, 'the film a pure start from delight to [MASK]'), (0, 'the film was pure delight from start to end')]
    """
    _check(copies, seed, mask_token, dict(p_mask=p_mask, p_delete=p_delete, p_swap=p_swap, p_ngram=p_ngram),
           ngram_range)
    out: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"augment: text {i} is a {type(text).__name__}, not a str")
        units = words(text)
        if not units:
            raise ValueError(f"augment: text {i} is empty (no words to augment)")
        for c in range(copies):
            rng = np.random.default_rng([seed, i, c])
            out.append((i, join(augment_words(units, rng, mask_token=mask_token, p_mask=p_mask,
                                              p_delete=p_delete, p_swap=p_swap, p_ngram=p_ngram,
                                              ngram_range=ngram_range))))
    return out
