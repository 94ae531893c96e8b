"""The teacher model as evaluate and register see it (models/teacher, written by the teacher stage).

models/teacher is a TextClassifier folder (like models/finetuned, with a Hugging
Face backbone), or, with `teacher.enabled: false`, holds only DISABLED.json.
A project without the folder at all (built before the teacher stage existed, or
by a test that runs stages in-process) has no teacher either.
"""

from __future__ import annotations

from pathlib import Path

from components.core.errors import DataError
from components.model.io import CONFIG

DISABLED = "DISABLED.json"  # what components/stages/teacher.py writes when teacher.enabled is false


def folder(path: Path) -> Path | None:
    """`path` when it holds a teacher model; None when the teacher is disabled or absent.

    A folder that is neither (no config.json, no DISABLED.json) is a broken output:
    a one-line DataError.
    """
    path = Path(path)
    if not path.exists() or (path / DISABLED).is_file():
        return None
    if not (path / CONFIG).is_file():
        raise DataError(f"{path}: neither a teacher model ({CONFIG}) nor {DISABLED} (re-run the teacher stage)")
    return path
