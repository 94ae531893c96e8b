"""Where each stage reads and writes, relative to a project root.

These are the data contracts of ARCHITECTURE.md; dvc.yaml lists the same
paths (a test keeps them in sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
ALL_SPLITS = SPLITS + ("unlabeled",)
# The optional unlabeled corpus (ingest.unlabeled_source): data/prepared/corpus.parquet and
# the "corpus" split of data/tokenized exist only when it is set. Pretraining text, like
# "unlabeled", but streamed (bigger than RAM) and never read by validate or the teacher.
CORPUS = "corpus"


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def at(cls, root: str | Path = ".") -> "Paths":
        return cls(Path(root).resolve())

    # ingest
    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    def split(self, name: str) -> Path:
        return self.prepared / f"{name}.parquet"

    @property
    def labels(self) -> Path:
        return self.prepared / "labels.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    # validate
    @property
    def data_docs(self) -> Path:
        return self.reports / "data_docs"

    # tokenize
    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "models" / "tokenizer"

    @property
    def tokenizer(self) -> Path:
        return self.tokenizer_dir / "tokenizer.json"

    @property
    def tokenized(self) -> Path:
        return self.root / "data" / "tokenized"

    # teacher (its report: report("teacher"))
    @property
    def teacher_model(self) -> Path:
        return self.root / "models" / "teacher"

    @property
    def teacher_transfer(self) -> Path:
        """The transfer set: text, probabilities, source, label (components/data/transfer.py)."""
        return self.root / "data" / "teacher" / "transfer.parquet"

    @property
    def teacher_base(self) -> Path:
        """The checkpoint's base sentence vector per text: text, vector (model/teacher_base.py)."""
        return self.root / "data" / "teacher" / "base.parquet"

    @property
    def model2vec(self) -> Path:
        """model2vec's static embeddings of the teacher checkpoint (teacher.base)."""
        return self.root / "models" / "model2vec"

    # model stages
    @property
    def pretrained(self) -> Path:
        return self.root / "models" / "pretrained"

    @property
    def finetuned(self) -> Path:
        return self.root / "models" / "finetuned"

    @property
    def finetuned_static(self) -> Path:
        """The static student (finetune.static), a TextClassifier folder like models/finetuned."""
        return self.root / "models" / "finetuned_static"

    @property
    def baseline(self) -> Path:
        """evaluate's best registrable bag-of-words baseline (model/bow.py), for <name>-baseline."""
        return self.root / "models" / "baseline"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    def report(self, name: str) -> Path:
        return self.reports / f"{name}.json"
