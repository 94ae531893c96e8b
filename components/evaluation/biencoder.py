"""evaluate's rows for the pair task's bi-encoder (finetune.bi_encoder): the model and its
TF-IDF cosine baseline, scored by retrieval (evaluation/retrieval.py) on the test positives.

Baseline tfidf_cosine: cosine of TF-IDF vectors fitted on both sides of the train pairs,
with the analyzer (word 1-2 grams / char_wb 2-5 grams, as pair_baselines' tfidf_lr) chosen on
val MRR, so it also works where words are not split by spaces (the "language-robust" rule).
"""

from __future__ import annotations

import numpy as np

from components.data.pairs import positives, retrieval_set
from components.evaluation.retrieval import cosine, per_query, retrieval_metrics


def tfidf_cosine(train_pairs, val_pos, test_pos) -> tuple[np.ndarray, dict]:
    """(cosine similarities [Q, C] of the test retrieval set, the choice {"analyzer"}).

    train_pairs: every train (a, b) (the TF-IDF space, fitted on both sides); val_pos /
    test_pos: positive pairs. The analyzer with the best val MRR wins (ties: the earlier;
    without val positives: word)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from components.evaluation.pair_baselines import ANALYZERS

    def sim(vec, pos):
        q, c, rel = retrieval_set(pos)
        return (vec.transform(q) @ vec.transform(c).T).toarray(), rel  # rows are L2-normalised

    best = None
    for name, kw in ANALYZERS.items():
        vec = TfidfVectorizer(sublinear_tf=True, min_df=1, **kw).fit([t for p in train_pairs for t in p])
        score = float(per_query(*sim(vec, val_pos), "mrr").mean()) if val_pos else 0.0
        if best is None or score > best[0]:
            best = (score, name, vec)
    _, name, vec = best
    return sim(vec, test_pos)[0], {"analyzer": name}


def score_biencoder(biencoder, positive_id: int, train, val, test, *, bootstrap_samples: int,
                    seed: int) -> tuple[dict[str, float], dict]:
    """evaluate's retrieval rows: (flat metrics, the TF-IDF choice). train / val / test are
    (pairs, label ids) of the splits; keys model.<m>, baseline.tfidf_cosine.<m> (m in METRICS,
    and recall_at_10's CI) and retrieval.queries / retrieval.candidates (the test set's size)."""
    from components.evaluation.metrics import flatten

    val_pos, test_pos = positives(*val, positive_id), positives(*test, positive_id)
    queries, candidates, relevant = retrieval_set(test_pos)
    if not queries:
        return {}, {}
    sim = cosine(biencoder.embed(queries), biencoder.embed(candidates))  # [Q, C]
    tfidf_sim, choice = tfidf_cosine(train[0], val_pos, test_pos)
    out = {"retrieval.queries": float(len(queries)), "retrieval.candidates": float(len(candidates))}
    for prefix, s in (("model", sim), ("baseline.tfidf_cosine", tfidf_sim)):
        out.update(flatten(prefix, retrieval_metrics(s, relevant, bootstrap_samples=bootstrap_samples, seed=seed)))
    return out, choice
