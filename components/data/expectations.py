"""The validate stage's Great Expectations suites, one per prepared split.

Built-in GX expectations cover schema, nulls, label set, lengths, uniqueness
and leakage (the shared sets come from components/data/leakage.py). The checks
GX has no built-in for (bad-character share, class balance, multi_label label
lists) are in components/data/custom_expectations.py, which registers them
with GX on import; so import this module lazily (components/data/gx_checkpoint.py
does, inside `run_checkpoint`).

Every expectation carries `severity` (GX's own critical/warning field) and
`meta["check"]`, the short name that reports/validation.json and the error
lines use.
"""

from __future__ import annotations

from typing import Iterable

import great_expectations.expectations as gxe

from components.core.config import IngestConfig, ValidateConfig
from components.data.custom_expectations import (
    BAD_CHARS,
    ExpectColumnBadCharFractionToBeAtMost,
    ExpectColumnMajorityFractionToBeAtMost,
    ExpectLabelCountsToBeAtLeast,
    ExpectLabelListsToBeValid,
    ExpectNoLabelFractionToBeAtMost,
)

LABELLED = ("train", "val", "test")
CRITICAL, WARNING = "critical", "warning"


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
    with it (leakage.leak_sets); each becomes a not-in-set expectation,
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
    self-pair; no pair also in an earlier split. `pair_sets` (one split's entry of
    leakage.pair_sets) holds the ids of this split's rows that are self-pairs ("self") or
    whose unordered pair is in split X (X)."""
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
