"""Property tests of components/data/augment.py (hypothesis)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.data import augment as A

MASK = "[MASK]"
LATIN = st.text(alphabet="abcdefgh'-", min_size=1, max_size=6)
CJK = st.sampled_from(list("好棒喜欢差烂失望这个电影。，！"))
UNITS = st.lists(LATIN | CJK, min_size=1, max_size=30)
TEXTS = UNITS.map(A.join)
PROBS = st.fixed_dictionaries(dict(p_mask=st.floats(0, 0.5), p_delete=st.floats(0, 0.5),
                                   p_swap=st.floats(0, 1), p_ngram=st.floats(0, 1)))
RANGE = st.tuples(st.integers(1, 4), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1]))



def prop(*strategies):
    """@given without a deadline: the CPU is shared, and a slow example is no failure."""
    return lambda test: settings(deadline=None)(given(*strategies)(test))


def rng(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ words / join


@prop(st.text())
def test_words_round_trip_any_text(text):
    units = A.words(text)
    assert all(u and not any(ch.isspace() for ch in u) for u in units)
    assert A.words(A.join(units)) == units


@prop(st.lists(CJK, min_size=1, max_size=40).map("".join))
def test_unspaced_text_is_split_into_characters(text):
    assert A.words(text) == list(text)
    assert A.join(A.words(text)) == text


def test_long_unspaced_latin_word_stays_one_word():
    assert A.words("supercalifragilisticexpialidocious!") == ["supercalifragilisticexpialidocious!"]
    assert A.words("我买了iPhone，很好") == ["我", "买", "了", "iPhone", "，", "很", "好"]


# ------------------------------------------------------------------ single-text ops


@prop(UNITS, st.floats(0, 1), st.floats(0, 1), st.integers(0, 2**32))
def test_mask_or_delete_only_keeps_or_masks_words(units, p_mask, p_delete, seed):
    p_delete = min(p_delete, 1 - p_mask)
    out = A.mask_or_delete(units, p_mask, p_delete, rng(seed), MASK)
    assert out, "never empty for a non-empty input"
    assert len(out) <= len(units)
    kept = Counter(w for w in out if w != MASK)
    assert not kept - Counter(units)  # no word from outside the text


@prop(UNITS, st.floats(0, 1), st.integers(0, 2**32))
def test_deletion_keeps_an_ordered_subsequence(units, p, seed):
    out = A.random_deletion(units, p, rng(seed))
    assert out
    it = iter(units)
    assert all(w in it for w in out)  # a subsequence, in the original order


@prop(UNITS, st.floats(0, 1), st.integers(0, 2**32))
def test_masking_keeps_length_and_positions(units, p, seed):
    out = A.random_mask(units, p, rng(seed), MASK)
    assert len(out) == len(units)
    assert all(o in (w, MASK) for o, w in zip(out, units))


@prop(UNITS, st.integers(0, 20), st.integers(0, 2**32))
def test_swap_preserves_the_multiset(units, n, seed):
    assert Counter(A.random_swap(units, n, rng(seed))) == Counter(units)


@prop(UNITS, RANGE, st.integers(0, 2**32))
def test_ngram_is_a_contiguous_span(units, ngram_range, seed):
    out = A.ngram_sample(units, rng(seed), ngram_range)
    n = len(out)
    assert 1 <= n <= len(units)
    assert n <= ngram_range[1] and (n >= ngram_range[0] or n == len(units))
    assert any(units[s:s + n] == out for s in range(len(units) - n + 1))


# ------------------------------------------------------------------ augment


@prop(st.lists(TEXTS, max_size=6), st.integers(0, 4), st.integers(0, 2**32), RANGE, PROBS)
def test_augment_is_deterministic_and_counts_copies(texts, copies, seed, ngram_range, probs):
    out = A.augment(texts, copies, seed, ngram_range=ngram_range, **probs)
    assert out == A.augment(list(texts), copies, seed, ngram_range=ngram_range, **probs)
    assert [i for i, _ in out] == [i for i in range(len(texts)) for _ in range(copies)]


@prop(st.lists(TEXTS, min_size=1, max_size=6), st.integers(1, 3), st.integers(0, 2**32), RANGE, PROBS)
def test_augment_never_empty_and_adds_no_outside_words(texts, copies, seed, ngram_range, probs):
    for i, text in A.augment(texts, copies, seed, mask_token=MASK, ngram_range=ngram_range, **probs):
        units = A.words(text)
        assert units
        assert not Counter(w for w in units if w != MASK) - Counter(A.words(texts[i]))


@prop(st.lists(TEXTS, min_size=1, max_size=6), st.integers(0, 6), st.integers(1, 3), st.integers(0, 2**32))
def test_prefix_of_the_list_gives_the_same_augmentations(texts, k, copies, seed):
    whole = A.augment(texts, copies, seed)
    assert A.augment(texts[:k], copies, seed) == [r for r in whole if r[0] < k]


@prop(st.lists(TEXTS, max_size=5), st.integers(0, 2**32))
def test_zero_copies_is_empty(texts, seed):
    assert A.augment(texts, 0, seed) == []


def test_seed_changes_the_output():
    texts = ["the film was a pure delight from start to end"] * 3
    assert A.augment(texts, 5, seed=0) != A.augment(texts, 5, seed=1)


def test_teacher_mask_token_is_used():
    out = A.augment(["a b c d"], 1, seed=0, mask_token="<mask>", p_mask=1.0, p_delete=0.0, p_ngram=0.0)
    assert out == [(0, "<mask> <mask> <mask> <mask>")]


def test_chinese_is_augmented_by_character():
    out = A.augment(["这部电影真的很好看"], 20, seed=0, p_ngram=0.0, p_delete=0.0)
    assert any(MASK in t for _, t in out)  # a character got masked, not the whole text
    for _, t in out:
        assert len([w for w in A.words(t)]) == 9  # 9 characters, masked or swapped, none dropped


@pytest.mark.parametrize("kwargs, message", [
    (dict(copies=-1), "copies must be an integer >= 0, got -1"),
    (dict(copies=1.5), "copies must be an integer >= 0"),
    (dict(seed=-3), "seed must be an integer >= 0"),
    (dict(mask_token="[ MASK ]"), "mask_token must be one word"),
    (dict(p_mask=1.5), "p_mask must be in [0, 1]"),
    (dict(p_mask=0.6, p_delete=0.6), "p_mask + p_delete must be at most 1"),
    (dict(ngram_range=(3, 2)), "ngram_range must be (lo, hi) with 1 <= lo <= hi"),
    (dict(texts=["fine", "  "]), "text 1 is empty"),
    (dict(texts=["fine", None]), "text 1 is a NoneType, not a str"),
])
def test_bad_arguments_are_one_line_value_errors(kwargs, message):
    args = dict(texts=["a good film"], copies=1, seed=0) | kwargs
    with pytest.raises(ValueError) as err:
        A.augment(**args)
    assert message in str(err.value) and "\n" not in str(err.value)
