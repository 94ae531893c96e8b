"""The stage graph, declared once.

Every driver (the `encoderflow stage` CLI that dvc.yaml calls, the Prefect
flow, the drift test against dvc.yaml) reads this table. A stage is a module
exposing `run(cfg: Params, paths: Paths) -> dict` (a small JSON-able summary).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from components.core.errors import EncoderflowError


@dataclass(frozen=True)
class Stage:
    name: str  # also the params section, dvc stage, Prefect task and MLflow run name
    module: str
    params: tuple[str, ...]  # params.yaml sections the stage reads
    deps: tuple[str, ...]  # data/model inputs (paths relative to the project root)
    outs: tuple[str, ...]  # outputs DVC caches
    metrics: tuple[str, ...] = ()  # reports (cache: false)
    plots: tuple[str, ...] = ()  # CSV/PNG files or folders for `dvc plots` (cache: false)

    def load(self) -> Callable:
        return importlib.import_module(self.module).run


# ingest.task (issue #15) is in the ingest section; the stages after ingest read the task
# from data/prepared/labels.json (their dep), not from params, so no section is added to
# them. The new keys validate.min_label_count / max_no_label_fraction and register.metric
# are tracked with their sections.
STAGES: tuple[Stage, ...] = (
    # data/incoming: drop files there (ingest.source: file:data/incoming/*.csv) and
    # DVC sees a changed dep, so the next run re-ingests. data/corpus is the same for the
    # unlabeled corpus (ingest.unlabeled_source: file:data/corpus/*.txt). Each is kept in
    # git by a .gitkeep.
    Stage("ingest", "components.stages.ingest", ("project", "ingest"), ("data/incoming", "data/corpus"),
          ("data/prepared",), ("reports/ingest.json",)),
    # validate also writes reports/data_docs/ (GX Data Docs), deliberately not an output:
    # GX stamps run times, random ids and absolute paths into the pages, and every
    # output DVC tracks must come out byte-identical when a stage reruns on the same inputs.
    Stage("validate", "components.stages.validate", ("ingest", "validate"), ("data/prepared",),
          (), ("reports/validation.json",)),
    # A large pretrained checkpoint fine-tuned on train; it labels the transfer set finetune
    # distils from. It reads the prepared text only (not the tokenizer or the pretrained
    # encoder), so it caches independently of them. teacher.enabled: false writes empty outs.
    Stage("teacher", "components.stages.teacher", ("project", "teacher"),
          ("data/prepared", "reports/validation.json"), ("models/teacher", "data/teacher", "models/model2vec"),
          ("reports/teacher.json",)),
    # reports/validation.json orders validate before tokenize in DVC's graph.
    Stage("tokenize", "components.stages.tokenize", ("project", "tokenize"),
          ("data/prepared", "reports/validation.json"),
          ("models/tokenizer", "data/tokenized"), ("reports/tokenizer.json",)),
    # data/teacher: base.parquet, the teacher's base vectors of whole texts (pretrain.vector_weight);
    # models/model2vec: the teacher's static embeddings (pretrain.embeddings: model2vec).
    Stage("pretrain", "components.stages.pretrain", ("project", "model", "pretrain"),
          ("data/tokenized", "models/tokenizer", "data/teacher", "models/model2vec"), ("models/pretrained",), ("reports/pretrain.json",),
          ("reports/pretrain_curve.csv",)),
    # data/prepared: labels.json (and the raw text when finetune.init is a HF folder);
    # models/tokenizer: the vocabulary of the random-init ablation; data/teacher: the
    # transfer set (teacher probabilities) to distil from.
    Stage("finetune", "components.stages.finetune", ("project", "model", "finetune"),
          ("data/prepared", "data/tokenized", "models/tokenizer", "models/pretrained", "data/teacher",
           "models/model2vec"),
          ("models/finetuned", "models/finetuned_static"), ("reports/finetune.json",), ("reports/finetune_curve.csv",)),
    # The curve CSVs are deps because evaluate draws them into reports/plots/; models/teacher
    # is scored next to the model (the teacher.* row). reports/speed.json (texts/s) differs
    # run to run, so it is kept out of the byte-reproducible metrics.json.
    # reports/{pretrain,finetune,teacher}.json: the training seconds of the frontier (frontier.json).
    # models/baseline: the best registrable bag-of-words baseline, for <model_name>-baseline.
    Stage("evaluate", "components.stages.evaluate", ("project", "model", "finetune", "evaluate",
                                                      "register.model_name", "register.serving"),
          ("data/prepared", "data/tokenized", "models/tokenizer", "models/finetuned", "models/finetuned_static",
           "models/pretrained", "models/teacher", "models/model2vec", "reports/pretrain_curve.csv",
           "reports/finetune_curve.csv", "reports/pretrain.json", "reports/finetune.json", "reports/teacher.json"),
          ("models/baseline",), ("reports/metrics.json", "reports/speed.json", "reports/frontier.json"),
          ("reports/plots",)),
    # Registers a version of register.model_name (the student) and of <model_name>-teacher
    # (when enabled and changed), and moves each one's @champion/@challenger.
    Stage("register", "components.stages.register", ("project", "register"),
          ("models/finetuned", "models/finetuned_static", "models/teacher", "models/baseline",
           "reports/metrics.json", "data/prepared"), (),
          ("reports/register.json",)),
)

NAMES = tuple(s.name for s in STAGES)


def get(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise EncoderflowError(f"unknown stage {name!r} (expected one of: {', '.join(NAMES)})")
