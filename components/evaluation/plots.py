"""evaluate's figures (matplotlib, Agg) and the CSVs `dvc plots` reads.

Everything lands in reports/plots/: confusion_matrix.png + confusion.csv
(actual,predicted per test row), reliability.png + reliability.csv (one row per
confidence bin), the training curves pretrain_curve.png / finetune_curve.png
drawn from reports/pretrain_curve.csv and reports/finetune_curve.csv when
those exist, and frontier.png (test accuracy against texts/s of every model of the
run, from reports/frontier.json; evaluation/frontier.py).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display; must happen before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: row[k] for k in columns})


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def confusion(actual: np.ndarray, predicted: np.ndarray, labels: list[str], folder: Path) -> np.ndarray:
    """confusion.csv (label names) + confusion_matrix.png; returns counts [C, C] (rows = actual)."""
    c = len(labels)
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (np.asarray(actual), np.asarray(predicted)), 1)
    write_csv(folder / "confusion.csv",
              [{"actual": labels[a], "predicted": labels[p]} for a, p in zip(actual, predicted)],
              ["actual", "predicted"])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * c + 3, 1.2 * c + 2.5))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(c), labels, rotation=45, ha="right")
    ax.set_yticks(range(c), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    top = counts.max() if counts.size else 0
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if counts[i, j] > top / 2 else "black")
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return counts


def reliability(bins: list[dict], folder: Path, ece: float | None = None) -> None:
    """reliability.csv + reliability.png (accuracy vs confidence per bin)."""
    cols = ["bin", "lower", "upper", "count", "confidence", "accuracy"]
    write_csv(folder / "reliability.csv", bins, cols)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["count"]]
    ax.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=width,
           align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=100)
    plt.close(fig)


def curve(csv_path: Path, png_path: Path, title: str) -> bool:
    """Plot every numeric column of a training-curve CSV against its step/epoch column.

    Returns False (and draws nothing) when the CSV is missing or empty. Columns
    are whatever the training stage wrote, so this works for both curves.
    """
    if not csv_path.is_file():
        return False
    rows = read_csv(csv_path)
    if not rows:
        return False
    xcol = next((c for c in ("step", "epoch") if c in rows[0]), None)
    ycols = [c for c in rows[0] if c not in ("step", "epoch")]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for col in ycols:
        xs, ys = [], []
        for i, row in enumerate(rows):
            try:
                y = float(row[col])
                x = float(row[xcol]) if xcol else float(i)
            except (TypeError, ValueError):
                continue  # blank cell: this metric was not logged on that row
            xs.append(x)
            ys.append(y)
        if ys:
            series[col] = (xs, ys)
    if not series:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), sharex=True, squeeze=False)
    for ax, (col, (xs, ys)) in zip(axes[:, 0], series.items()):
        ax.plot(xs, ys, marker="." if len(xs) < 50 else None)
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xcol or "row")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True


def frontier(doc: dict, path: Path) -> bool:
    """frontier.png: accuracy (with its 95% CI) against texts/s on a log axis, one point per timed
    model of frontier.json, the Pareto front joined by a step line. False when nothing is timed."""
    rows = [r for r in doc["models"] if r.get("texts_per_s") and r.get("accuracy") is not None]
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ci = r.get("accuracy_ci")
        err = None if not ci else [[r["accuracy"] - ci[0]], [ci[1] - r["accuracy"]]]
        color = {"teacher": "tab:red", "student": "tab:blue"}.get(r["role"], "tab:gray")
        ax.errorbar(r["texts_per_s"], r["accuracy"], yerr=err, fmt="o", color=color, capsize=3,
                    markerfacecolor=color if r.get("pareto") else "white")
        ax.annotate(r["name"], (r["texts_per_s"], r["accuracy"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["texts_per_s"])
    if len(front) > 1:
        ax.step([r["texts_per_s"] for r in front], [r["accuracy"] for r in front], where="post",
                color="black", linewidth=0.8, alpha=0.6, label="Pareto front")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("texts/s (batch {}, {} threads; log scale)".format(
        doc.get("conditions", {}).get("batch_size", "?"), doc.get("lineage", {}).get("threads", "?")))
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy / speed frontier (filled: on the front)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
