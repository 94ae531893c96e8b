"""The validate stage's Great Expectations suites, one per prepared split.

Built-in GX expectations cover schema, nulls, label set, lengths, uniqueness
and leakage. Two dataset-level checks have no built-in equivalent, so they are
custom GX expectations backed by custom column-aggregate metrics (pandas):
the share of bad characters over ALL characters of a column, and the share of
the majority value. multi_label splits (label = a list of ids per row) get three
more, backed by one metric over the label lists: valid id lists, label
cardinality (labels per row; share of rows with none) and a minimum count per label. Both register with GX when this module is imported, so
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


def label_list_stats(values) -> tuple:
    """(rows, bad rows, rows with no label, min / max / mean labels per row, ((id, count), ...))
    over the non-null label lists of a column. A bad row is not a list of distinct ints.

    >>> label_list_stats([[0, 2], [], [2], "x"])
    (4, 1, 1, 0, 2, 1.0, ((0, 1), (2, 2)))
    """
    rows = bad = empty = 0
    sizes: list[int] = []
    counts: dict[int, int] = {}
    for v in values:
        rows += 1
        v = v.tolist() if hasattr(v, "tolist") else v
        if not isinstance(v, list) or not all(isinstance(i, int) for i in v) or len(set(v)) != len(v):
            bad += 1
            continue
        empty += not v
        sizes.append(len(v))
        for i in v:
            counts[i] = counts.get(i, 0) + 1
    mean = round(sum(sizes) / len(sizes), 6) if sizes else 0.0
    return (rows, bad, empty, min(sizes, default=0), max(sizes, default=0), mean, tuple(sorted(counts.items())))


class ColumnLabelListStats(ColumnAggregateMetricProvider):
    """label_list_stats of a multi_label `label` column (one list of ids per row)."""

    metric_name = "column.label_list_stats"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return label_list_stats(column.dropna())


def _cardinality(stats) -> dict:
    rows, bad, empty, lo, hi, mean, _ = stats
    return {"labels_per_row_min": lo, "labels_per_row_max": hi, "labels_per_row_mean": mean,
            "no_label_rows": empty, "rows": rows}


class ExpectLabelListsToBeValid(ColumnAggregateExpectation):
    """Every label is a list of distinct ids in 0..num_labels-1 (unexpected_count: bad rows)."""

    num_labels: int
    metric_dependencies = ("column.label_list_stats",)
    success_keys = ("num_labels",)
    args_keys = ("column", "num_labels")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        stats = metrics["column.label_list_stats"]
        out_of_range = sum(c for i, c in stats[6] if not 0 <= i < self.num_labels)
        bad = stats[1] + out_of_range
        return {"success": bad == 0, "result": {"observed_value": bad, "unexpected_count": bad,
                                                "details": _cardinality(stats)}}


class ExpectNoLabelFractionToBeAtMost(ColumnAggregateExpectation):
    """Label cardinality: at most `max_value` of the rows carry no label at all
    (observed: that share; details: min / max / mean labels per row)."""

    max_value: float
    metric_dependencies = ("column.label_list_stats",)
    success_keys = ("max_value",)
    args_keys = ("column", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        stats = metrics["column.label_list_stats"]
        rows, empty = stats[0] - stats[1], stats[2]
        fraction = empty / rows if rows else 0.0
        return {"success": fraction <= self.max_value,
                "result": {"observed_value": fraction, "unexpected_count": empty,
                           "details": _cardinality(stats)}}


class ExpectLabelCountsToBeAtLeast(ColumnAggregateExpectation):
    """Each of the num_labels ids is on at least `min_value` rows (unexpected_count: labels
    below it; details: their ids and every label's count)."""

    num_labels: int
    min_value: int
    metric_dependencies = ("column.label_list_stats",)
    success_keys = ("num_labels", "min_value")
    args_keys = ("column", "num_labels", "min_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        counts = dict(metrics["column.label_list_stats"][6])
        per_label = [counts.get(i, 0) for i in range(self.num_labels)]
        low = [i for i, c in enumerate(per_label) if c < self.min_value]
        return {"success": not low, "result": {"observed_value": min(per_label, default=0),
                                               "unexpected_count": len(low),
                                               "details": {"below": low, "counts": per_label}}}


def _e(cls, check: str, severity: str, meta: dict | None = None, **kwargs):
    """Build one expectation, tagged with its check name and severity."""
    return cls(severity=severity, meta={"check": check, **(meta or {})}, **kwargs)


def split_expectations(split: str, columns: Iterable[str], labels: list[str],
                       leaks: dict[str, list[str]], cfg: ValidateConfig,
                       ingest: IngestConfig, task: str = "single_label",
                       pair_sets: dict[str, list[str]] | None = None) -> list:
    """The expectations for one split.

    `columns` are the columns the file really has: checks on a missing column
    are left out (its ExpectColumnToExist fails instead of every check
    raising). `leaks` maps another split's name to the texts this split shares
    with it (computed with `overlap`); each becomes a not-in-set expectation,
    so a leak is a real GX result with one unexpected row per shared text.
    """
    labelled = split in LABELLED
    pair = task == "pair" and labelled  # the unlabeled split holds single texts, as ever
    required = ("id", "text", "label", "label_name") if labelled else ("id", "text")
    if pair:
        required = ("id", "text", "text_pair", "label", "label_name")
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
            # pair: a text may be in many pairs; the PAIR is unique (pair_unique)
            *([] if pair else [_e(gxe.ExpectColumnValuesToBeUnique, "text_unique", CRITICAL, column="text")]),
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
            if pair and other != "unlabeled":  # pair: leakage is on the pair (pair_expectations)
                continue
            out.append(_e(gxe.ExpectColumnValuesToNotBeInSet, f"no_leak_{other}",
                          WARNING if other == "unlabeled" else CRITICAL, {"other": other},
                          column="text", value_set=shared,
                          description=f"No `text` also appears in the {other} split "
                                      f"(the {len(shared)} shared texts are the set)."))

    if pair and "text_pair" in present:
        out += pair_expectations(pair_sets or {}, cfg)
    if labelled and "label" in present and task == "multi_label":
        return out + _multi_label_expectations(split, labels, cfg)
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


def _multi_label_expectations(split: str, labels: list[str], cfg: ValidateConfig) -> list:
    """label: lists of valid ids; cardinality (rows with no label); train: rows per label."""
    n = len(labels)
    out = [
        _e(gxe.ExpectColumnValuesToNotBeNull, "label_not_null", CRITICAL, column="label"),
        _e(ExpectLabelListsToBeValid, "label_lists", CRITICAL, column="label", num_labels=n,
           description=f"Every `label` is a list of distinct ids of labels.json (0..{n - 1})."),
        _e(ExpectNoLabelFractionToBeAtMost, "label_cardinality", CRITICAL if split == "train" else WARNING,
           column="label", max_value=cfg.max_no_label_fraction,
           description=f"At most {cfg.max_no_label_fraction:g} of the rows have no label "
                       f"(details: labels per row)."),
    ]
    if split == "train":
        out.append(_e(ExpectLabelCountsToBeAtLeast, "label_min_count", CRITICAL, column="label",
                      num_labels=n, min_value=cfg.min_label_count,
                      description=f"Every label is on at least {cfg.min_label_count} train rows."))
    return out


def pair_expectations(pair_sets: dict[str, list[str]], cfg: ValidateConfig) -> list:
    """pair: text_pair not null / not empty / length; the pair (text, text_pair) unique; no
    self-pair; no pair also in an earlier split. `pair_sets` (from `pair_sets`) holds the ids of
    this split's rows that are self-pairs ("self") or whose unordered pair is in split X (X)."""
    bounds = {"column": "text_pair", "min_value": cfg.min_text_chars, "max_value": cfg.max_text_chars}
    out = [
        _e(gxe.ExpectColumnValuesToNotBeNull, "text_pair_not_null", CRITICAL, column="text_pair"),
        _e(gxe.ExpectColumnValuesToNotMatchRegex, "text_pair_not_empty", CRITICAL,
           column="text_pair", regex=r"^\s*$"),
        _e(gxe.ExpectColumnValueLengthsToBeBetween, "text_pair_length", WARNING, **bounds),
        _e(gxe.ExpectCompoundColumnsToBeUnique, "pair_unique", CRITICAL, column_list=["text", "text_pair"]),
        _e(gxe.ExpectColumnValuesToNotBeInSet, "no_self_pair", CRITICAL, column="id",
           value_set=pair_sets.get("self", []),
           description="No row pairs a text with itself (text == text_pair after normalisation; "
                       "the set holds the ids of such rows)."),
    ]
    for other, ids in sorted(pair_sets.items()):
        if other != "self":
            out.append(_e(gxe.ExpectColumnValuesToNotBeInSet, f"no_pair_leak_{other}", CRITICAL,
                          {"other": other}, column="id", value_set=ids,
                          description=f"No pair (in either order) also appears in the {other} split "
                                      f"(the set holds the ids of the {len(ids)} rows that do)."))
    return out


def pair_key(a, b) -> tuple:
    """The unordered pair: (a, b) and (b, a) are the same pair for leakage."""
    return tuple(sorted((str(a), str(b))))


def pair_sets(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[str]]]:
    """pair: per labelled split, {"self": ids of self-pairs, X: ids of rows whose unordered pair
    is also in the earlier split X} (val against train; test against train and val)."""
    keys = {s: {pair_key(a, b) for a, b in zip(df["text"], df["text_pair"])}
            for s, df in frames.items() if df is not None and {"text", "text_pair"} <= set(df.columns)}
    earlier = {"train": (), "val": ("train",), "test": ("train", "val")}
    out: dict[str, dict[str, list[str]]] = {}
    for split, others in earlier.items():
        if split not in keys:
            continue
        df = frames[split]
        rows = list(zip(df["id"], df["text"], df["text_pair"]))
        out[split] = {"self": sorted(str(i) for i, a, b in rows if a == b)}
        for o in others:
            if o in keys:
                out[split][o] = sorted(str(i) for i, a, b in rows if pair_key(a, b) in keys[o])
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
