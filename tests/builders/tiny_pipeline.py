"""A real, tiny encoderflow project for the register / predict / serve / UI tests.

`build(root)` writes a small synthetic sentiment CSV and a tiny params.yaml,
then runs the real stages ingest -> validate -> tokenize -> pretrain ->
finetune -> evaluate in-process (tiny transformer, a few steps), so the
registered model is a genuine fine-tuned TextClassifier. About 30 s on 2 CPUs.
`cached_build(factory)` builds once per pytest process; `clone(src, dst)`
copies the outputs into a fresh project with an EMPTY MLflow store, so each
test starts from a clean registry.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import yaml

POS = ["good", "great", "excellent", "wonderful", "superb", "lovely", "brilliant", "delightful"]
NEG = ["bad", "awful", "terrible", "boring", "dreadful", "poor", "dull", "horrible"]
FILL = ["the", "film", "movie", "story", "was", "really", "quite", "acting", "plot", "and",
        "a", "very", "cast", "ending", "music", "overall", "truly", "script"]

TINY = {
    "project": {"seed": 0},
    "ingest": {"source": "file:raw.csv", "val_fraction": 0.15, "test_fraction": 0.2},
    "validate": {"max_length_outlier_fraction": 1.0},
    "tokenize": {"vocab_size": 200, "min_frequency": 1, "max_length": 32},
    "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64, "max_length": 32},
    "pretrain": {"max_steps": 6, "batch_size": 16, "seq_len": 32, "checkpoint_every": 3,
                 "val_every": 3, "precision": "32", "val_sequences": 8, "vector_weight": 0},
    # No teacher (fine-tuning MiniLM would dominate every test that builds this project),
    # so nothing to distil from: fine-tuning trains on the gold labels. No base outputs either
    # (no base vectors for pretrain, no model2vec table: no static student, no model2vec baseline);
    # tests/integration/test_static.py and test_general_distill.py run those on a tiny BERT.
    "teacher": {"enabled": False, "base": False},
    "finetune": {"max_epochs": 6, "batch_size": 16, "lr": 0.003, "precision": "32", "patience": 6,
                 "distill": {"enabled": False}, "static": {"enabled": False}},
    "evaluate": {"bootstrap_samples": 100, "random_init_baseline": False},
    "register": {"bootstrap_samples": 200},
}
UPSTREAM = ("ingest", "validate", "tokenize", "pretrain", "finetune", "evaluate")


# A third class for the single-label >2-classes tests (sentences(..., classes=3)).
MID = ["okay", "average", "mediocre", "fine", "passable", "middling", "decent", "ordinary"]
CLASS_WORDS = {"positive": POS, "negative": NEG, "neutral": MID}

# multi_label: each topic present in a text contributes 2 of its words; a text has 0-3 topics.
TOPICS = {"acting": ["actor", "actress", "performance", "role", "cast", "portrayal"],
          "music": ["score", "soundtrack", "song", "melody", "orchestra", "tune"],
          "visuals": ["camera", "shot", "colour", "lighting", "frame", "scenery"]}
TOPIC_WORD = {w: t for t, ws in TOPICS.items() for w in ws}
TOPIC_FILL = ["the", "film", "movie", "story", "was", "really", "quite", "and", "a", "very",
              "overall", "truly", "script", "ending", "scene", "plot"]


def sentences(n: int, seed: int = 0, classes: int = 2) -> list[tuple[str, str]]:
    """n distinct (text, label) rows; the label is readable from the sentiment words
    (classes=3 adds "neutral")."""
    rng = random.Random(seed)
    names = ["positive", "negative", "neutral"][:classes]
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(names) if classes != 2 else rng.choice(["positive", "negative"])
        words = rng.sample(FILL, 5) + rng.sample(CLASS_WORDS[label], 2)
        rng.shuffle(words)
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    return rows


def topic_rows(n: int, seed: int = 0, noise: float = 0.0) -> list[tuple[str, list[str]]]:
    """n distinct (text, label set) rows for multi_label: every topic present adds 2 of its
    words; about 1 in 8 texts has no topic (a row with no labels). With `noise` > 0 each
    topic word is dropped with probability noise / 2 (a present topic may lose both), and
    each absent topic adds 1 of its words anyway (a distractor) with probability `noise`,
    so the labels are no longer separable (README, Tasks, uses noise 0.3)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        topics = sorted(t for t in TOPICS if rng.random() < 0.45)
        words = rng.sample(TOPIC_FILL, 5) + [w for t in topics for w in rng.sample(TOPICS[t], 2)]
        if noise:
            words = [w for w in words if not (w in TOPIC_WORD and rng.random() < noise / 2)]
            words += [rng.choice(TOPICS[t]) for t in TOPICS if t not in topics and rng.random() < noise]
        rng.shuffle(words)
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append((text, topics))
    return rows


def pair_rows(n: int, seed: int = 0, noise: float = 0.0) -> list[tuple[str, str, str]]:
    """n distinct (text, text_pair, label) rows for pair (synthetic paraphrase detection):
    "duplicate" when text_pair is text's words reshuffled with one filler word swapped for
    another, "different" when it is another text of `sentences` (so both sides read alike
    and only their overlap tells); about half of each. `noise` flips that share of labels."""
    rng = random.Random(seed)
    pool = [t for t, _ in sentences(max(2 * n, 200), seed=seed + 1)]
    rows, seen = [], set()
    while len(rows) < n:
        a = rng.choice(pool)
        if rng.random() < 0.5:
            words = a.split()
            fill = [i for i, w in enumerate(words) if w in FILL]
            words[rng.choice(fill)] = rng.choice([w for w in FILL if w not in words])
            rng.shuffle(words)
            b, label = " ".join(words), "duplicate"
        else:
            b, label = rng.choice(pool), "different"
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        if noise and rng.random() < noise:
            label = "different" if label == "duplicate" else "duplicate"
        rows.append((a, b, label))
    return rows


# What write_project(..., task="multi_label") adds to TINY: a "|"-delimited CSV label column.
MULTI = {"ingest": {"task": "multi_label", "label_delimiter": "|"}}


def write_project(root: Path, n: int = 320, overrides: dict | None = None, task: str = "single_label",
                  classes: int = 2, noise: float = 0.0) -> None:
    """raw.csv + params.yaml. pair: columns text, text_pair, label (pair_rows). multi_label: labels "a|b", "[]" for a row with none (TOPICS);
    single_label: `classes` sentiment classes (2 or 3)."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    columns = ["text", "label"]
    if task == "multi_label":
        rows = [(t, "|".join(ls) or "[]") for t, ls in topic_rows(n + n // 4, noise=noise)]
    elif task == "pair":
        # unlabeled rows: single texts (text_pair empty) from another seed, for pretraining
        rows = [*pair_rows(n, noise=noise), *((t, "", None) for t, _ in sentences(n // 4, seed=7))]
        columns = ["text", "text_pair", "label"]
    else:
        rows = sentences(n + n // 4, classes=classes)  # the last quarter is unlabeled text (for pretraining)
    frame = pd.DataFrame(rows, columns=columns)
    frame.loc[n:, "label"] = None
    frame.to_csv(root / "raw.csv", index=False)
    params = {k: dict(v) for k, v in TINY.items()}
    if task == "multi_label":
        for section, values in MULTI.items():
            params[section].update(values)
    if task == "pair":
        params["ingest"] = {**params["ingest"], "task": "pair"}
    for section, values in (overrides or {}).items():
        params.setdefault(section, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def run_stages(root: Path, names=UPSTREAM, params: str = "params.yaml") -> None:
    from components.core.config import load_params
    from components.core.paths import Paths
    from components.stages import table as stages

    cfg = load_params(root / params)
    for name in names:
        stages.get(name).load()(cfg, Paths.at(root))


def build(root: Path, **project) -> Path:
    """A project with every upstream output of register (and their MLflow runs);
    `project`: write_project's task / classes / overrides."""
    write_project(root, **project)
    run_stages(root)
    return root


_CACHE: dict[str, Path] = {}


def cached_build(factory, **project) -> Path:
    """Build once per pytest process (factory: pytest's tmp_path_factory).

    Developers may point ENCODERFLOW_TEST_PIPELINE at a folder to build it once
    and reuse it across pytest runs (it is built there when empty). `project`
    (task="multi_label", classes=3, ...) builds another project, cached per value.
    """
    import os

    if project:
        key = repr(sorted(project.items()))
        if key not in _CACHE:
            _CACHE[key] = build(factory.mktemp("tiny_pipeline_" + "_".join(map(str, project.values()))), **project)
        return _CACHE[key]
    if "root" not in _CACHE:
        keep = os.environ.get("ENCODERFLOW_TEST_PIPELINE")
        if keep and (Path(keep) / "reports" / "metrics.json").is_file():
            _CACHE["root"] = Path(keep)
        else:
            _CACHE["root"] = build(Path(keep) if keep else factory.mktemp("tiny_pipeline"))
    return _CACHE["root"]


def clone(src: Path, dst: Path, with_store: bool = False) -> Path:
    """Copy inputs + outputs of `src` to `dst`; the MLflow store too only if `with_store`."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("raw.csv", "params.yaml"):
        shutil.copyfile(src / name, dst / name)
    for name in ("data", "models", "reports") + (("mlflow.db", "mlartifacts") if with_store else ()):
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        elif (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def register(root: Path, **register_params) -> dict:
    """Run the register stage in `root` with `register.*` overrides; returns reports/register.json."""
    import json

    from components.core.config import load_params
    from components.core.paths import Paths
    from components.stages import register as stage

    overrides = [f"register.{k}={json.dumps(v)}" for k, v in register_params.items()]
    stage.run(load_params(root / "params.yaml", overrides), Paths.at(root))
    return json.loads((root / "reports" / "register.json").read_text())


def registry_client(root: Path):
    """An MlflowClient on the registry of `root`'s params.yaml."""
    from components.core.config import load_params
    from components.registry import client as registry

    return registry.connect(load_params(root / "params.yaml").project, root)


def save_untrained(root: Path, seed: int = 0) -> None:
    """Replace models/finetuned with an UNTRAINED classifier of the same architecture.

    A real TextClassifier (pretrained encoder + a fresh head), just never
    fine-tuned: near-uniform probabilities, so roughly chance accuracy. The
    gate tests use it as the clearly worse model.
    """
    import torch
    from tokenizers import Tokenizer

    from components.core.atomic import atomic_dir
    from components.model.classifier import ClassifierNet, TextClassifier
    from components.model.io import TOKENIZER, load_encoder

    torch.manual_seed(seed)
    good = TextClassifier.from_folder(root / "models" / "finetuned")
    enc = load_encoder(root / "models" / "pretrained")
    net = ClassifierNet(enc, len(good.labels), 0.0)
    tok = Tokenizer.from_file(str(root / "models" / "pretrained" / TOKENIZER))
    clf = TextClassifier(net, tok, good.labels, good.max_length, good.pad_id)
    with atomic_dir(root / "models" / "finetuned") as tmp:
        clf.save(tmp)
