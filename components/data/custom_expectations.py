"""Custom Great Expectations metrics and expectations (no built-in equivalent).

Two dataset-level checks of every split, each a custom expectation backed by a
custom column-aggregate metric (pandas):
- the share of bad characters (BAD_CHARS) over ALL characters of a column;
- the share of the majority value (class balance).

multi_label splits (label = a list of ids per row) get three more, backed by
one metric over the label lists (`label_list_stats`): valid id lists, label
cardinality (labels per row; share of rows with none) and a minimum count per
label.

GX registers every class here when this module is imported (a GX side effect
of subclassing), so only components/data/expectations.py imports it, and
that module is itself imported lazily, inside the validate stage's run.
"""

from __future__ import annotations

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)

# C0/C1 control characters except \t \n \r, DEL, and U+FFFD (what a decoder
# writes for undecodable bytes). Newlines and tabs are legitimate in text.
BAD_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]"


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
