"""Behavioural checks (CheckList-style) on any `predict_proba(texts) -> [N, C]`.

- Invariance: swapping a person's first name, or a number, for another should
  not change the predicted label. Works for any label set.
- Directional: adding a negation ("... but it was terrible", inserting "not")
  should lower the probability of the positive class. Only run when the labels
  name a positive and a negative class; otherwise skipped with a note.

Each check reports a pass rate and the number of texts it applied to (texts
without a name / number / verb to negate are not counted).
"""

from __future__ import annotations

import random
import re
from typing import Callable

import numpy as np

NAMES = ("john", "mary", "michael", "sarah", "david", "emma", "james", "olivia", "robert",
         "linda", "daniel", "laura", "peter", "anna", "thomas", "maria", "paul", "susan")
_NAME_RE = re.compile(r"\b(" + "|".join(NAMES) + r")\b", re.IGNORECASE)
_NUM_RE = re.compile(r"\b\d+\b")
_VERB_RE = re.compile(r"\b(is|was|are|were)\b", re.IGNORECASE)
POSITIVE = ("positive", "pos")
NEGATIVE = ("negative", "neg")

Predict = Callable[[list[str]], np.ndarray]


def _match_case(new: str, old: str) -> str:
    return new.capitalize() if old[:1].isupper() else new


def swap_names(text: str, rng: random.Random) -> str | None:
    """Replace every known first name by another one; None when the text has none.

    >>> swap_names("john met mary", random.Random(0)) not in (None, "john met mary")
    True
    """
    if not _NAME_RE.search(text):
        return None
    def repl(m):
        old = m.group(0)
        return _match_case(rng.choice([n for n in NAMES if n != old.lower()]), old)
    return _NAME_RE.sub(repl, text)


def swap_numbers(text: str, rng: random.Random) -> str | None:
    """Replace every whole number by a different one; None when there is none.

    >>> swap_numbers("2 hours", random.Random(0)) != "2 hours"
    True
    """
    if not _NUM_RE.search(text):
        return None
    def repl(m):
        old = int(m.group(0))
        new = old
        while new == old:
            new = rng.randint(1, 99)
        return str(new)
    return _NUM_RE.sub(repl, text)


def insert_not(text: str) -> str | None:
    """Negate the first is/was/are/were; None when there is none.

    >>> insert_not("the film is fun")
    'the film is not fun'
    """
    if not _VERB_RE.search(text):
        return None
    return _VERB_RE.sub(lambda m: m.group(0) + " not", text, count=1)


def append_negative(text: str) -> str:
    """Append a negative clause.

    >>> append_negative("fun .")
    'fun . but it was terrible .'
    """
    return text.rstrip() + " but it was terrible ."


def prepend_not(text: str) -> str:
    """Put "not" in front.

    >>> prepend_not("a fine film")
    'not a fine film'
    """
    return "not " + text.lstrip()


def positive_index(labels: list[str]) -> int | None:
    """Index of the positive class when the labels are a positive/negative pair.

    >>> positive_index(["negative", "positive"]), positive_index(["sports", "politics"])
    (1, None)
    """
    low = [str(x).lower() for x in labels]
    pos = [i for i, x in enumerate(low) if x in POSITIVE]
    neg = [i for i, x in enumerate(low) if x in NEGATIVE]
    return pos[0] if len(pos) == 1 and len(neg) == 1 else None


def invariance(predict: Predict, texts: list[str], perturb, seed: int = 0, decide=None) -> dict[str, float]:
    """Share of perturbable texts whose predicted label does not change.

    `decide(probs)` turns probabilities into predictions (default: argmax; multi_label: the
    0/1 label set [N, C], which must not change at all)."""
    decide = decide or (lambda probs: probs.argmax(axis=1))
    rng = random.Random(seed)
    pairs = [(t, p) for t in texts if (p := perturb(t, rng)) is not None]
    if not pairs:
        return {"n": 0.0}
    before = decide(predict([t for t, _ in pairs]))
    after = decide(predict([p for _, p in pairs]))
    same = (before == after).reshape(len(pairs), -1).all(axis=1)
    return {"n": float(len(pairs)), "pass_rate": float(same.mean())}


def directional(predict: Predict, texts: list[str], perturb, pos: int) -> dict[str, float]:
    """Share of texts where the perturbation lowers P(positive)."""
    pairs = [(t, p) for t in texts if (p := perturb(t)) is not None]
    if not pairs:
        return {"n": 0.0}
    before = predict([t for t, _ in pairs])[:, pos]
    after = predict([p for _, p in pairs])[:, pos]
    return {"n": float(len(pairs)), "pass_rate": float((after < before).mean())}


def run_checks(predict: Predict, texts: list[str], labels: list[str], seed: int = 0,
               max_texts: int = 500, decide=None) -> tuple[dict[str, float], list[str]]:
    """All checks on (at most `max_texts` of) `texts`: flat metrics and notes.

    Directional checks use only texts the model currently calls positive, where
    a drop is possible and meaningful.
    """
    texts = list(texts)[:max_texts]
    out: dict[str, float] = {}
    notes: list[str] = []
    for name, fn in (("invariance_names", swap_names), ("invariance_numbers", swap_numbers)):
        for k, v in invariance(predict, texts, fn, seed, decide).items():
            out[f"{name}.{k}"] = v
    if decide is not None:  # multi_label
        notes.append("directional checks skipped: they need a single-label positive/negative pair")
        return out, notes
    pos = positive_index(labels)
    if pos is None:
        notes.append(f"directional checks skipped: labels {list(labels)} are not a positive/negative pair")
        return out, notes
    probs = predict(texts) if texts else np.zeros((0, len(labels)))
    positive = [t for t, p in zip(texts, probs) if p.argmax() == pos]
    for name, fn in (("directional_append", append_negative), ("directional_prepend_not", prepend_not),
                     ("directional_insert_not", insert_not)):
        for k, v in directional(predict, positive, fn, pos).items():
            out[f"{name}.{k}"] = v
    return out, notes
