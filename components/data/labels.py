"""data/prepared/labels.json, written by ingest as {"labels": [names...]} (index = label id).

The one reader, used by validate, finetune and evaluate: a file that passes here
passes everywhere (ingest always writes at least 2 distinct names).
"""

from __future__ import annotations

import json
from pathlib import Path

from components.core.errors import DataError


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
