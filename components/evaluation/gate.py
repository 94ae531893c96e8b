"""The promotion gate: does a new model version replace @champion?

Both the current champion and the new version are re-scored in this process
on the same, current test split, through their registered pyfuncs (what
serving would load), so an older champion is judged on today's data.

Rules (params `register.*`):
- floors: accuracy >= floor_accuracy, and (if floor_vs_baselines) >= each baseline of
  reports/metrics.json that the run scored: TF-IDF+LR, NB-LR and model2vec (a baseline
  registered as <name>-baseline is floored by the others only);
- with a champion: also gain = acc(new) - acc(champion) >= min_gain AND the
  paired bootstrap 95% CI of that difference lies above zero.
Pass -> "champion"; fail -> "challenger". No champion yet -> floors only.

The metric is `register.metric` (default: the task's primary one, accuracy for
single_label, macro_f1 for multi_label); the floors and the gain are in that metric,
and the baseline floors read `baseline.<name>.<metric>`. A mean over rows (accuracy,
subset_accuracy) is compared through 0/1 vectors as above; so is recall_at_10 (pair with a
bi-encoder), whose rows are the test queries (the positive pairs) and whose values are the
recall per query (a 0/1 hit when the query has one partner), floored by the TF-IDF cosine
baseline. An F1 is not a mean over
rows: its rows are per-row tp/fp/fn count vectors (evaluation/multilabel.row_counts),
and the paired bootstrap recomputes the F1 of both models on the same resampled rows.
The paired bootstrap is scipy.stats.bootstrap (paired=True, percentile CI); seeded, it draws
the resamples metrics.bootstrap_ci draws.
The Decision's `accuracy`, `champion_accuracy` and `floors` hold values of `metric`
(the names predate the other metrics; `metric` says which).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from components.evaluation.metrics import DIGITS

# compared as per-row vectors (0/1, or recall per query); the F1s as count rows
MEAN_METRICS = ("accuracy", "subset_accuracy", "recall_at_10")
FLOOR_BASELINES = ("tfidf_lr", "nbsvm", "model2vec")  # the classifiers' baseline floors


def tfidf_key(metric: str) -> str:
    """The TF-IDF floor's key in metrics.json: the classifier's, or for the bi-encoder's
    retrieval metric the TF-IDF cosine baseline's.

    >>> tfidf_key("accuracy"), tfidf_key("recall_at_10")
    ('baseline.tfidf_lr.accuracy', 'baseline.tfidf_cosine.recall_at_10')
    """
    return f"baseline.tfidf_cosine.{metric}" if metric == "recall_at_10" else f"baseline.tfidf_lr.{metric}"


def baseline_floors(metrics: dict[str, float], metric: str, skip: str | None = None) -> dict[str, float]:
    """baseline name -> its `metric` in metrics.json, for every floor baseline the run scored
    (TF-IDF cosine for recall_at_10); `skip` leaves one out (the baseline being gated).

    >>> baseline_floors({"baseline.tfidf_lr.accuracy": 0.7, "baseline.nbsvm.accuracy": 0.72}, "accuracy")
    {'tfidf_lr': 0.7, 'nbsvm': 0.72}
    """
    if metric == "recall_at_10":
        key = tfidf_key(metric)
        return {"tfidf_cosine": float(metrics[key])} if key in metrics else {}
    return {n: float(metrics[f"baseline.{n}.{metric}"]) for n in FLOOR_BASELINES
            if n != skip and f"baseline.{n}.{metric}" in metrics}
def _paired_ci(new: np.ndarray, old: np.ndarray, diff, samples: int, seed: int, level: float,
               batch: int | None = None) -> tuple[float, float]:
    """Percentile CI of diff(new rows, old rows) over `samples` paired resamples (scipy's
    bootstrap, paired=True: every resample takes the same row indices for both models)."""
    from scipy.stats import bootstrap

    if len(new) == 1:  # scipy wants two rows; every resample of one row is that row
        value = float(diff(np.moveaxis(new, 0, -1), np.moveaxis(old, 0, -1), axis=-1))
        return value, value
    res = bootstrap((new, old), diff, paired=True, vectorized=True, axis=0, n_resamples=samples,
                    batch=batch, method="percentile", confidence_level=level,
                    rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_bootstrap_stat(new_rows: np.ndarray, old_rows: np.ndarray, stat: str, samples: int, seed: int,
                          level: float = 0.95) -> tuple[float, float, float]:
    """paired_bootstrap for an F1 ("macro_f1" / "micro_f1"): rows are per-row count vectors
    [N, 3C + 1] of each model on the same test rows; every resample takes the same rows for
    both, and the difference of the two F1s is the bootstrapped statistic.

    >>> rows = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0]] * 10, dtype=float)  # C = 1
    >>> paired_bootstrap_stat(rows, rows, "macro_f1", 200, seed=0)  # the same model: no difference
    (0.0, 0.0, 0.0)
    """
    from components.evaluation.multilabel import STATS

    new, old = np.asarray(new_rows, dtype=np.float64), np.asarray(old_rows, dtype=np.float64)
    if new.shape != old.shape or new.ndim != 2 or len(new) == 0:
        raise ValueError(f"paired_bootstrap_stat: expected two equal-shape non-empty [N, K] arrays, "
                         f"got {new.shape} and {old.shape}")

    def diff(a, b, axis=-1):  # a, b [K, ..., n] resampled rows -> F1(a) - F1(b) [...]
        sums = lambda x: np.moveaxis(x.sum(axis=axis), 0, -1)  # noqa: E731  [..., K] summed counts
        return STATS[stat](sums(a), len(new)) - STATS[stat](sums(b), len(new))

    low, high = _paired_ci(new, old, diff, samples, seed, level, batch=100)  # [K, 100, N] at a time
    point = float(STATS[stat](new.sum(axis=0), len(new)) - STATS[stat](old.sum(axis=0), len(old)))
    return point, low, high


def paired_bootstrap(new_correct: np.ndarray, old_correct: np.ndarray, samples: int, seed: int,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean accuracy difference (new - old) and its percentile CI, resampling rows in pairs.

    Both vectors are 0/1 per test row [N]; the same resampled rows are used for
    both models, which is what makes the test paired (much tighter than two
    independent CIs).

    >>> paired_bootstrap(np.ones(50), np.zeros(50), 200, seed=0)
    (1.0, 1.0, 1.0)
    >>> d, lo, hi = paired_bootstrap(np.array([1, 0] * 25), np.array([0, 1] * 25), 500, seed=0)
    >>> d == 0.0 and lo < 0 < hi
    True
    """
    new = np.asarray(new_correct, dtype=np.float64)  # [N]
    old = np.asarray(old_correct, dtype=np.float64)  # [N]
    if new.shape != old.shape or new.ndim != 1 or len(new) == 0:
        raise ValueError(f"paired_bootstrap: expected two equal-length non-empty vectors, "
                         f"got {new.shape} and {old.shape}")
    low, high = _paired_ci(new, old, lambda a, b, axis=-1: (a - b).mean(axis=axis), samples, seed, level)
    return float((new - old).mean()), low, high


@dataclass
class Decision:
    alias: str  # "champion" | "challenger"
    accuracy: float  # new version, re-scored on the current test split
    n_test: int
    floor_accuracy: float
    floors: dict[str, float] = field(default_factory=dict)  # baseline -> its score ({}: floor_vs_baselines off)
    champion_version: str | None = None
    champion_accuracy: float | None = None
    gain: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    min_gain: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)
    reason: str = ""
    metric: str = "accuracy"  # what accuracy / champion_accuracy / tfidf_accuracy measure

    def as_dict(self) -> dict:
        return asdict(self)


def decide(new_correct: np.ndarray, champion_correct: np.ndarray | None, *, champion_version: str | None,
           min_gain: float, floor_accuracy: float, floors: dict[str, float] | None,
           samples: int, seed: int, metric: str = "accuracy") -> Decision:
    """Apply the gate rules to per-row correctness vectors (0/1, same test rows), or, for an
    F1 `metric`, to per-row count vectors [N, 3C + 1] (score_rows)."""
    new = np.asarray(new_correct, dtype=np.float64)
    if metric in MEAN_METRICS:
        acc = float(new.mean())
    else:
        from components.evaluation.multilabel import STATS

        acc = float(STATS[metric](new.sum(axis=0), len(new)))
    d = Decision(alias="challenger", accuracy=acc, n_test=len(new), floor_accuracy=floor_accuracy,
                 floors=dict(floors or {}), champion_version=champion_version, min_gain=min_gain,
                 metric=metric)
    shown = round(acc, DIGITS)  # the baselines come from metrics.json at this precision: a tie is a tie
    d.checks["floor_accuracy"] = shown >= floor_accuracy
    for name, value in d.floors.items():
        d.checks[f"floor_vs_{name}"] = shown >= value
    if champion_correct is not None:
        if metric in MEAN_METRICS:
            gain, lo, hi = paired_bootstrap(new, champion_correct, samples, seed)
            d.champion_accuracy = float(np.mean(champion_correct))
        else:
            gain, lo, hi = paired_bootstrap_stat(new, champion_correct, metric, samples, seed)
            d.champion_accuracy = acc - gain
        d.gain, d.ci_low, d.ci_high = gain, lo, hi
        d.checks["min_gain"] = gain >= min_gain
        d.checks["ci_excludes_zero"] = lo > 0.0
    failed = [name for name, ok in d.checks.items() if not ok]
    if not failed:
        d.alias = "champion"
        d.reason = ("first model to pass the floors" if champion_correct is None else
                    f"beats champion v{champion_version} by {d.gain:+.4f} "
                    f"(95% CI {d.ci_low:+.4f}..{d.ci_high:+.4f})")
    else:
        d.reason = "failed: " + ", ".join(failed)
    return d


def correct_vector(model, texts: list[str], label_names: list[str], batch_size: int = 64) -> np.ndarray:
    """Score a loaded pyfunc on the test texts: 1.0 where its label is right, else 0.0.

    Compared by label NAME, so a champion trained with another label order is
    still scored correctly.
    """

    out = model.predict(input_frame(texts), params={"output": "label", "batch_size": batch_size})
    pred = np.asarray(out["label"], dtype=object)  # [N]
    return (pred == np.asarray(label_names, dtype=object)).astype(np.float64)


def input_frame(texts: list):
    """The pyfunc input: a `text` column, or `text` + `text_pair` for (a, b) tuples (pair).

    >>> list(input_frame([("a", "b")]).columns), list(input_frame(["a"]).columns)
    (['text', 'text_pair'], ['text'])
    """
    import pandas as pd

    if texts and isinstance(texts[0], tuple):
        return pd.DataFrame({"text": [a for a, _ in texts], "text_pair": [b for _, b in texts]})
    return pd.DataFrame({"text": texts})


def retrieval_rows(model, texts: list, truth: list, metric: str, positive: str, batch_size: int = 64) -> np.ndarray:
    """recall_at_10 per query of a loaded pair pyfunc's bi-encoder (its `embedding` of single
    texts) on the test pairs labelled `positive` (evaluation/retrieval.py)."""
    import pandas as pd

    from components.data.pairs import retrieval_set
    from components.evaluation.retrieval import cosine, per_query

    queries, candidates, relevant = retrieval_set([t for t, y in zip(texts, truth) if y == positive])
    if not queries:
        raise ValueError(f"no test pair is labelled {positive!r}: nothing to retrieve")
    params = {"output": "embedding", "batch_size": batch_size}
    q = model.predict(pd.DataFrame({"text": queries}), params=params)  # [Q, H]
    c = model.predict(pd.DataFrame({"text": candidates}), params=params)  # [C, H]
    return per_query(cosine(q, c), relevant, metric)


def score_rows(model, texts: list[str], truth: list, metric: str, labels: list[str] = (),
               batch_size: int = 64, positive: str | None = None) -> np.ndarray:
    """What `decide` compares for `metric`, from a loaded pyfunc on the test texts.

    truth: label names (single_label) or label-name lists (multi_label). accuracy: 0/1 per
    row (correct_vector); subset_accuracy: 0/1 per row, the whole label set right; an F1:
    per-row tp/fp/fn counts [N, 3C + 1] over `labels` (labels.json: a label in neither truth
    nor predictions still counts, F1 0, as in evaluate's torchmetrics macro-F1) plus any other
    name the model predicts; matched by NAME, so a champion with another label order is
    scored correctly.
    """
    if metric == "accuracy":
        return correct_vector(model, texts, truth, batch_size)
    if metric == "recall_at_10":  # pair + bi-encoder: per query, on the `positive` test pairs
        return retrieval_rows(model, texts, truth, metric, positive, batch_size)

    from components.evaluation.multilabel import row_counts

    out = model.predict(input_frame(texts), params={"output": "label", "batch_size": batch_size})
    pred = [list(v) for v in out["labels"]] if "labels" in out.columns else [[v] for v in out["label"]]
    true = [list(v) for v in truth] if truth and not isinstance(truth[0], str) else [[v] for v in truth]
    names = list(labels) + sorted({n for row in true + pred for n in row} - set(labels))
    column = {n: i for i, n in enumerate(names)}

    def hot(sets: list[list[str]]) -> np.ndarray:  # [N, C] bool
        out = np.zeros((len(sets), len(names)), dtype=bool)
        for r, names_of_row in enumerate(sets):
            out[r, [column[n] for n in names_of_row]] = True
        return out

    rows = row_counts(hot(pred), hot(true))  # [N, 3C + 1]
    return rows[:, -1] if metric == "subset_accuracy" else rows
