"""The validate stage's Great Expectations suites, one per prepared split.

Built-in GX expectations cover schema, nulls, label set, lengths, uniqueness
and leakage. Two dataset-level checks have no built-in equivalent, so they are
custom GX expectations backed by custom column-aggregate metrics (pandas):
the share of bad characters over ALL characters of a column, and the share of
the majority value. Both register with GX when this module is imported, so
import it lazily (components.stages.validate does, inside `run`).

Every expectation carries `severity` (GX's own critical/warning field) and
`meta["check"]`, the short name that reports/validation.json and the error
lines use.
"""

from __future__ import annotations

from typing import Any, Iterable

import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)

from components.core.config import IngestConfig, ValidateConfig

# C0/C1 control characters except \t \n \r, DEL, and U+FFFD (what a decoder
# writes for undecodable bytes). Newlines and tabs are legitimate in text.
BAD_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]"
LABELLED = ("train", "val", "test")
CRITICAL, WARNING = "critical", "warning"


def overlap(a: Iterable[Any], b: Iterable[Any]) -> list[str]:
    """Sorted non-null texts present in both `a` and `b` (the leakage set).

    >>> overlap(["x", "y", None], ["y", "z", None])
    ['y']
    """
    return sorted({t for t in a if isinstance(t, str)} & {t for t in b if isinstance(t, str)})


class ColumnBadCharCounts(ColumnAggregateMetricProvider):
    """(bad characters, all characters) over the non-null strings of a column."""

    metric_name = "column.bad_char_counts"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        text = column.dropna().astype(str)
        return int(text.str.count(BAD_CHARS).sum()), int(text.str.len().sum())


class ColumnMajorityCount(ColumnAggregateMetricProvider):
    """(majority value, its row count, non-null row count) of a column."""

    metric_name = "column.majority_count"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        counts = column.dropna().value_counts()
        if counts.empty:
            return None, 0, 0
        value = counts.index[0]
        return getattr(value, "item", lambda: value)(), int(counts.iloc[0]), int(counts.sum())


class ExpectColumnBadCharFractionToBeAtMost(ColumnAggregateExpectation):
    """Control / U+FFFD characters are at most `max_value` of all characters.

    unexpected_count is the number of bad characters (not rows).
    """

    max_value: float
    metric_dependencies = ("column.bad_char_counts",)
    success_keys = ("max_value",)
    args_keys = ("column", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        bad, total = metrics["column.bad_char_counts"]
        fraction = bad / total if total else 0.0
        return {"success": fraction <= self.max_value,
                "result": {"observed_value": fraction, "unexpected_count": bad,
                           "details": {"bad_chars": bad, "total_chars": total}}}


class ExpectColumnMajorityFractionToBeAtMost(ColumnAggregateExpectation):
    """The most common value covers at most `max_value` of the non-null rows.

    unexpected_count is the number of rows holding the majority value.
    """

    max_value: float
    metric_dependencies = ("column.majority_count",)
    success_keys = ("max_value",)
    args_keys = ("column", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        value, count, total = metrics["column.majority_count"]
        fraction = count / total if total else 0.0
        return {"success": fraction <= self.max_value,
                "result": {"observed_value": fraction, "unexpected_count": count,
                           "details": {"majority_value": value, "rows": total}}}


def _e(cls, check: str, severity: str, meta: dict | None = None, **kwargs):
    """Build one expectation, tagged with its check name and severity."""
    return cls(severity=severity, meta={"check": check, **(meta or {})}, **kwargs)


def split_expectations(split: str, columns: Iterable[str], labels: list[str],
                       leaks: dict[str, list[str]], cfg: ValidateConfig,
                       ingest: IngestConfig) -> list:
    """The expectations for one split.

    `columns` are the columns the file really has: checks on a missing column
    are left out (its ExpectColumnToExist fails instead of every check
    raising). `leaks` maps another split's name to the texts this split shares
    with it (computed with `overlap`); each becomes a not-in-set expectation,
    so a leak is a real GX result with one unexpected row per shared text.
    """
    labelled = split in LABELLED
    required = ("id", "text", "label", "label_name") if labelled else ("id", "text")
    present = set(columns)
    out = [_e(gxe.ExpectColumnToExist, f"column_{c}", CRITICAL, column=c) for c in required]

    if split == "train":
        out.append(_e(gxe.ExpectTableRowCountToBeBetween, "rows", CRITICAL, min_value=1))
    elif labelled and getattr(ingest, f"{split}_fraction") > 0:
        out.append(_e(gxe.ExpectTableRowCountToBeBetween, "rows", WARNING, min_value=1))

    if "id" in present:
        out.append(_e(gxe.ExpectColumnValuesToNotBeNull, "id_not_null", CRITICAL, column="id"))
        # Same id = same normalized text: near-duplicates (case/space variants).
        out.append(_e(gxe.ExpectColumnValuesToBeUnique, "id_unique", WARNING, column="id"))

    if "text" in present:
        bounds = {"column": "text", "min_value": cfg.min_text_chars,
                  "max_value": cfg.max_text_chars}
        out += [
            _e(gxe.ExpectColumnValuesToNotBeNull, "text_not_null", CRITICAL, column="text"),
            _e(gxe.ExpectColumnValuesToNotMatchRegex, "text_not_empty", CRITICAL,
               column="text", regex=r"^\s*$"),
            _e(gxe.ExpectColumnValuesToBeUnique, "text_unique", CRITICAL, column="text"),
            # Same bounds twice: any outlier warns; more than the allowed share is critical.
            _e(gxe.ExpectColumnValueLengthsToBeBetween, "text_length", WARNING, **bounds),
            _e(gxe.ExpectColumnValueLengthsToBeBetween, "text_length_share", CRITICAL,
               mostly=1.0 - cfg.max_length_outlier_fraction, **bounds),
            _e(gxe.ExpectColumnValuesToNotMatchRegex, "bad_char_rows", WARNING,
               column="text", regex=BAD_CHARS),
            _e(ExpectColumnBadCharFractionToBeAtMost, "bad_char_share", CRITICAL,
               column="text", max_value=cfg.max_bad_char_fraction,
               description=f"Control or U+FFFD characters are at most "
                           f"{cfg.max_bad_char_fraction:g} of all characters in `text`."),
        ]
        for other, shared in sorted(leaks.items()):
            out.append(_e(gxe.ExpectColumnValuesToNotBeInSet, f"no_leak_{other}",
                          WARNING if other == "unlabeled" else CRITICAL, {"other": other},
                          column="text", value_set=shared,
                          description=f"No `text` also appears in the {other} split "
                                      f"(the {len(shared)} shared texts are the set)."))

    if labelled and "label" in present:
        ids = list(range(len(labels)))
        out += [
            _e(gxe.ExpectColumnValuesToNotBeNull, "label_not_null", CRITICAL, column="label"),
            _e(gxe.ExpectColumnValuesToBeOfType, "label_int64", CRITICAL,
               column="label", type_="int64"),
            _e(gxe.ExpectColumnValuesToBeInSet, "label_in_set", CRITICAL,
               column="label", value_set=ids),
        ]
        if "label_name" in present:
            # Not ExpectColumnPairValuesToBeInSet (label, label_name): its pandas
            # metric loops with iterrows (~1.8 s on 10k rows; linear in rows).
            out.append(_e(gxe.ExpectColumnValuesToBeInSet, "label_name_in_set", CRITICAL,
                          column="label_name", value_set=list(labels)))
        if split == "train":
            out += [
                _e(gxe.ExpectColumnDistinctValuesToContainSet, "labels_in_train", CRITICAL,
                   column="label", value_set=ids),
                _e(ExpectColumnMajorityFractionToBeAtMost, "class_balance", CRITICAL,
                   column="label", max_value=cfg.max_majority_fraction,
                   description=f"The majority class is at most "
                               f"{cfg.max_majority_fraction:g} of the train rows."),
            ]
    return out


def leak_sets(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[str]]]:
    """Per split, the texts it shares with earlier splits.

    val is checked against train; test against train and val; val and test
    against unlabeled (a warning: pretraining would see evaluation text).
    Each pair is checked once, on the later split.
    """
    pairs = {"val": ("train", "unlabeled"), "test": ("train", "val", "unlabeled")}
    out: dict[str, dict[str, list[str]]] = {}
    for split, others in pairs.items():
        df = frames.get(split)
        if df is None or "text" not in df:
            continue
        out[split] = {o: overlap(df["text"], frames[o]["text"]) for o in others
                      if frames.get(o) is not None and "text" in frames[o]}
    return out
