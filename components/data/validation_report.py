"""reports/validation.json's rows and the one-line messages of failed checks.

`summarize` turns one GX ExpectationValidationResult into a plain row (split,
check, GX name, kwargs summary, success, unexpected_count, observed_value,
severity, and check-specific extras); `describe` turns a failed row into the
line the stage prints, e.g. "train: 3 texts are null". Nothing here imports
GX: the rows are read through the result objects' attributes.
"""

from __future__ import annotations

from typing import Any

from components.core.errors import first_line


def _exception(r) -> str | None:
    """The exception message of a result that raised, else None."""
    info = r.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if isinstance(item, dict) and item.get("raised_exception"):
            return first_line(str(item.get("exception_message") or "unknown error"))
    return None


def summarize(split: str, r) -> dict[str, Any]:
    """One reports/validation.json row for a GX ExpectationValidationResult."""
    conf = r.expectation_config
    res = r.result or {}
    count = res.get("unexpected_count", res.get("missing_count"))
    row = {
        "split": split,
        "check": conf.meta["check"],
        "name": conf.type,
        "kwargs": kwargs_summary(conf.kwargs),
        "success": bool(r.success),
        "unexpected_count": None if count is None else int(count),
        "observed_value": res.get("observed_value"),
        "severity": str(getattr(conf.severity, "value", conf.severity)),
    }
    if row["check"] in ("label_lists", "label_cardinality", "label_min_count"):  # multi_label
        row["details"] = res.get("details")
    if "partial_missing_list" in res:
        row["missing"] = list(res["partial_missing_list"])
    if "unexpected_percent" in res and res["unexpected_percent"] is not None:
        row["unexpected_percent"] = round(float(res["unexpected_percent"]), 4)
    if (error := _exception(r)) is not None:
        row["success"], row["error"] = False, error
    return row


def kwargs_summary(kwargs: dict) -> dict:
    """Expectation kwargs for the report, with long value lists shortened.

    >>> kwargs_summary({"column": "text", "value_set": list("abcdefgh"), "batch_id": "x"})
    {'column': 'text', 'value_set': '[8 values]'}
    """
    out = {}
    for key, value in sorted(kwargs.items()):
        if key == "batch_id":
            continue
        if isinstance(value, (list, tuple, set)) and len(value) > 5:
            value = f"[{len(value)} values]"
        elif isinstance(value, (list, tuple, set)):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[key] = value
    return out


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.2%}"


def describe(row: dict, ctx: dict) -> str:
    """The one-line message for a failed expectation row of the report."""
    split, check, n = row["split"], row["check"], row["unexpected_count"]
    cfg, labels, observed = ctx["cfg"], ctx["labels"], row["observed_value"]
    if "error" in row:
        return f"{split}: check {check} could not run: {row['error']}"
    if check.startswith("column_"):
        have = ", ".join(map(str, ctx["frames"][split].columns)) or "none"
        return f"{split}: column '{check[len('column_'):]}' is missing (columns: {have})"
    if check.startswith("no_pair_leak_"):
        return f"{n} pairs appear in both {check[len('no_pair_leak_'):]} and {split}"
    if check.startswith("no_leak_"):
        return f"{n} texts appear in both {check[len('no_leak_'):]} and {split}"
    share = f" ({row['unexpected_percent']:.2f}%)" if "unexpected_percent" in row else ""
    bounds = f"[{cfg.min_text_chars}, {cfg.max_text_chars}]"
    simple = {
        "rows": "the split has no rows",
        "id_not_null": f"{n} ids are null",
        "id_unique": f"{n} rows share an id (the same normalized text) with another row",
        "text_not_null": f"{n} texts are null",
        "text_not_empty": f"{n} texts are empty or whitespace only",
        "text_unique": f"{n} rows have a text that occurs more than once in the split",
        "text_pair_not_null": f"{n} text_pairs are null",
        "text_pair_not_empty": f"{n} text_pairs are empty or whitespace only",
        "text_pair_length": f"{n} text_pairs have a length outside the bounds",
        "pair_unique": f"{n} rows have a (text, text_pair) pair that occurs more than once in the split",
        "no_self_pair": f"{n} rows pair a text with itself (text == text_pair)",
        "text_length": f"{n} texts{share} have a length outside {bounds} characters",
        "text_length_share": f"{n} texts{share} have a length outside {bounds} characters "
                             f"(allowed: {_pct(cfg.max_length_outlier_fraction)})",
        "bad_char_rows": f"{n} texts contain control or U+FFFD characters",
        "bad_char_share": f"{_pct(observed)} of characters are control or U+FFFD ({n} characters; "
                          f"allowed: {_pct(cfg.max_bad_char_fraction)})",
        "label_not_null": f"{n} labels are null",
        "label_int64": f"column 'label' has type {observed}, expected int64",
        "label_in_set": f"{n} labels are not ids of labels.json (0..{len(labels) - 1})",
        "label_name_in_set": f"{n} label_names are not in labels.json",
    }
    if check in simple:
        return f"{split}: {simple[check]}"
    if check == "labels_in_train":
        names = [labels[i] if isinstance(i, int) and 0 <= i < len(labels) else str(i)
                 for i in row.get("missing", [])]
        return f"{split}: {n} label(s) never appear in train: {', '.join(names)}"
    if check == "label_lists":
        return f"{split}: {n} labels are not lists of distinct ids of labels.json (0..{len(labels) - 1})"
    if check == "label_cardinality":
        return (f"{split}: {n} rows = {_pct(observed)} have no label "
                f"(allowed: {_pct(cfg.max_no_label_fraction)})")
    if check == "label_min_count":
        low = ", ".join(f"{labels[i]} ({row['details']['counts'][i]})" for i in row["details"]["below"])
        return (f"{split}: {n} label(s) on fewer than {cfg.min_label_count} train rows "
                f"(validate.min_label_count): {low}")
    if check == "class_balance":
        return (f"{split}: the majority class has {n} rows = {_pct(observed)} of train "
                f"(allowed: {_pct(cfg.max_majority_fraction)})")
    return f"{split}: {check} failed ({row['name']}, observed {observed!r})"
