"""The stage graph, declared once.

Every driver (the `encoderflow stage` CLI that dvc.yaml calls, the Prefect
flow, the drift test against dvc.yaml) reads this table. A stage is a module
exposing `run(cfg: Params, paths: Paths) -> dict` (a small JSON-able summary).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from components.errors import EncoderflowError


@dataclass(frozen=True)
class Stage:
    name: str  # also the params section, dvc stage, Prefect task and MLflow run name
    module: str
    params: tuple[str, ...]  # params.yaml sections the stage reads
    deps: tuple[str, ...]  # data/model inputs (paths relative to the project root)
    outs: tuple[str, ...]  # outputs DVC caches
    metrics: tuple[str, ...] = ()  # reports (cache: false)

    def load(self) -> Callable:
        return importlib.import_module(self.module).run


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "components.ingest", ("project", "ingest"), (),
          ("data/prepared",), ("reports/ingest.json",)),
    Stage("validate", "components.validate", ("ingest", "validate"), ("data/prepared",),
          ("reports/data_docs",), ("reports/validation.json",)),
    Stage("tokenize", "components.tokenize_text", ("project", "tokenize"), ("data/prepared",),
          ("models/tokenizer", "data/tokenized"), ("reports/tokenizer.json",)),
)

NAMES = tuple(s.name for s in STAGES)


def get(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise EncoderflowError(f"unknown stage {name!r} (expected one of: {', '.join(NAMES)})")
