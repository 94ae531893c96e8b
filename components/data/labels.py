"""data/prepared/labels.json, written by ingest as {"labels": [names...]} (index = label id).

For a task other than single_label it also holds {"task": "multi_label"}; a file
without "task" is single_label (so the default run's file is unchanged). Every
stage after ingest takes the task from here, not from params: it is part of the
data contract, and DVC tracks data/prepared as their dependency.

The one reader, used by validate, finetune and evaluate: a file that passes here
passes everywhere (ingest always writes at least 2 distinct names).
"""

from __future__ import annotations

import json
from pathlib import Path

from components.core.errors import DataError


def read_task(path: Path, where: str | None = None, stage: str | None = None) -> str:
    """The task of labels.json: "single_label" (no "task" key) or "multi_label"."""
    from components.core.config import TASKS

    read_labels(path, where, stage)
    task = json.loads(Path(path).read_text(encoding="utf-8")).get("task", "single_label")
    if task not in TASKS:
        raise DataError(f"{where or path}: 'task' must be one of {', '.join(TASKS)}, got {task!r}",
                        stage=stage)
    return task


def labels_json(labels: list[str], task: str) -> dict:
    """What ingest writes: {"labels": [...]} (+ "task" unless single_label)."""
    return {"labels": list(labels)} if task == "single_label" else {"labels": list(labels), "task": task}


def read_labels(path: Path, where: str | None = None, stage: str | None = None) -> list[str]:
    """labels.json -> label names; DataError (naming `where`, default the path) on a bad file.

    The names must be at least 2 distinct non-empty strings (fine-tuning needs 2 classes).
    """
    path = Path(path)
    where = where or str(path)
    if not path.is_file():
        raise DataError(f"{where}: not found (run the ingest stage first)", stage=stage)
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{where}: expected {{\"labels\": [names...]}} ({type(e).__name__}: {e})",
                        stage=stage) from None
    if (not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels)
            or len(labels) < 2 or len(set(labels)) != len(labels)):
        raise DataError(f"{where}: 'labels' must be a list of at least 2 distinct non-empty names, "
                        f"got {labels!r}", stage=stage)
    return labels
