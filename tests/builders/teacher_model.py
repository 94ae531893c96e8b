"""A tiny teacher for the evaluate / register tests: models/teacher as the teacher stage leaves it.

`add_teacher(root)` builds a tiny BertModel + fast tokenizer with save_pretrained (no
hub, vocabulary = the words of tests/cls_project.py and tests/tiny_pipeline.py),
fine-tunes it on the project's train split with finetune's own `fit_classifier`
(init = that Hugging Face folder, gold labels, no distillation), and saves the
TextClassifier to models/teacher/ plus reports/teacher.json: the stage's output
contract, without MiniLM. `disable_teacher(root)` writes the disabled stage's outputs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

INIT = "tiny-bert"  # what config.json "init" names (the stage writes teacher.init there)


def make_hf_folder(folder: Path) -> Path:
    """A tiny BERT (hidden 16, 2 layers) whose WordPiece vocabulary covers both toy corpora."""
    import cls_project as cp
    import tiny_pipeline as tp

    digits = [str(d) for d in range(10)] + [f"##{d}" for d in range(10)]
    words = sorted(set(cp.POS + cp.NEG + cp.FILL + tp.POS + tp.NEG + tp.FILL) - set(digits))
    return tiny_bert(folder, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + digits + words)


def tiny_bert(folder: Path, vocab: list[str]) -> Path:
    """Save a 2-layer, hidden-16 BertModel + a fast WordPiece tokenizer over `vocab` (no hub)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def add_teacher(root: Path, hf_folder: Path, epochs: int = 4, seed: int = 0) -> Path:
    """Fine-tune `hf_folder` on root's train split and save it as root/models/teacher."""
    from components.core.atomic import atomic_dir, write_json
    from components.core.config import DistillConfig, FinetuneConfig, ModelConfig, Params, ProjectConfig
    from components.core.paths import Paths
    from components.stages.finetune import fit_classifier

    paths = Paths.at(root)
    cfg = Params(project=ProjectConfig(seed=seed, tracking_uri="sqlite:///unused.db"),
                 model=dataclasses.replace(ModelConfig(), max_length=32, pooling="mean"),
                 finetune=FinetuneConfig(init=str(hf_folder), max_epochs=epochs, batch_size=16, lr=3e-3,
                                         patience=epochs, precision="32",
                                         distill=DistillConfig(enabled=False)))
    res = fit_classifier(cfg, paths, str(hf_folder), tag="teacher", progress=False)
    clf = res.classifier
    clf.meta.update({"init": INIT, "init_kind": "hf", "role": "teacher"})
    with atomic_dir(paths.teacher_model) as tmp:
        clf.save(tmp, extra={"seed": seed})
    write_json(paths.report("teacher"), {"enabled": True, "init": INIT, "val_accuracy": res.best_val_acc,
                                         "test_accuracy": None})
    return paths.teacher_model


def disable_teacher(root: Path) -> None:
    """models/teacher/DISABLED.json and reports/teacher.json as teacher.enabled: false writes them."""
    import shutil

    folder = Path(root) / "models" / "teacher"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "DISABLED.json").write_text(json.dumps({"enabled": False}))
    (Path(root) / "reports").mkdir(exist_ok=True)
    (Path(root) / "reports" / "teacher.json").write_text(json.dumps({"enabled": False}))
