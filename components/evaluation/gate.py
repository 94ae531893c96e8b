"""The promotion gate: does a new model version replace @champion?

Both the current champion and the new version are re-scored in this process
on the same, current test split, through their registered pyfuncs (what
serving would load), so an older champion is judged on today's data.

Rules (params `register.*`):
- floors: accuracy >= floor_accuracy, and (if floor_vs_tfidf) >= the TF-IDF
  baseline accuracy of reports/metrics.json;
- with a champion: also gain = acc(new) - acc(champion) >= min_gain AND the
  paired bootstrap 95% CI of that difference lies above zero.
Pass -> "champion"; fail -> "challenger". No champion yet -> floors only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from components.evaluation.metrics import bootstrap_ci

TFIDF_KEY = "baseline.tfidf_lr.accuracy"


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
    diff = new - old  # [N]
    # Resampling the per-row differences is resampling the rows in pairs.
    low, high = bootstrap_ci(diff, samples, seed, level)
    return float(diff.mean()), low, high


@dataclass
class Decision:
    alias: str  # "champion" | "challenger"
    accuracy: float  # new version, re-scored on the current test split
    n_test: int
    floor_accuracy: float
    tfidf_accuracy: float | None  # None when floor_vs_tfidf is off
    champion_version: str | None = None
    champion_accuracy: float | None = None
    gain: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    min_gain: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def decide(new_correct: np.ndarray, champion_correct: np.ndarray | None, *, champion_version: str | None,
           min_gain: float, floor_accuracy: float, tfidf_accuracy: float | None,
           samples: int, seed: int) -> Decision:
    """Apply the gate rules to per-row correctness vectors (0/1, same test rows)."""
    new = np.asarray(new_correct, dtype=np.float64)
    acc = float(new.mean())
    d = Decision(alias="challenger", accuracy=acc, n_test=len(new), floor_accuracy=floor_accuracy,
                 tfidf_accuracy=tfidf_accuracy, champion_version=champion_version, min_gain=min_gain)
    d.checks["floor_accuracy"] = acc >= floor_accuracy
    if tfidf_accuracy is not None:
        d.checks["floor_vs_tfidf"] = acc >= tfidf_accuracy
    if champion_correct is not None:
        gain, lo, hi = paired_bootstrap(new, champion_correct, samples, seed)
        d.champion_accuracy = float(np.mean(champion_correct))
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
    import pandas as pd

    out = model.predict(pd.DataFrame({"text": texts}), params={"output": "label", "batch_size": batch_size})
    pred = np.asarray(out["label"], dtype=object)  # [N]
    return (pred == np.asarray(label_names, dtype=object)).astype(np.float64)
