"""A tiny teacher for the evaluate / register tests: models/teacher as the teacher stage leaves it.

`tiny_bert(folder)` is the one tiny Hugging Face checkpoint of the tests (a BertModel +
fast tokenizer written with save_pretrained, no hub; vocabulary = the toy corpora's words).
`add_teacher(root, folder)` fine-tunes such a checkpoint on the project's train split with
finetune's own `fit_classifier` (init = that Hugging Face folder, gold labels, no
distillation), and saves the
TextClassifier to models/teacher/ plus reports/teacher.json: the stage's output
contract, without MiniLM. `disable_teacher(root)` writes the disabled stage's outputs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

INIT = "tiny-bert"  # what config.json "init" names (the stage writes teacher.init there)
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DIGITS = [str(d) for d in range(10)] + [f"##{d}" for d in range(10)]  # numbers: WordPiece digit by digit


def toy_words() -> list[str]:
    """Every word of the toy corpora (builders/cls_project.py, builders/tiny_pipeline.py), and of
    the unlabeled texts the teacher tests add: a tiny BERT over them has no unknown token."""
    from builders import cls_project as cp
    from builders import tiny_pipeline as tp

    return cp.POS + cp.NEG + cp.FILL + tp.POS + tp.NEG + tp.FILL + "fine story mary acting music".split()


def tiny_bert(folder: Path, words=None, id2label: dict | None = None) -> Path:
    """The tiny Hugging Face checkpoint of the tests: a 2-layer, hidden-16 BertModel + a fast WordPiece
    tokenizer, saved with save_pretrained (no hub). The vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK],
    the digits (and ##digits), then `words` (default: toy_words()) sorted. `id2label` goes into
    config.json (the default is HF's placeholder LABEL_0, LABEL_1)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = toy_words() if words is None else list(words)
    vocab = SPECIAL + DIGITS + sorted(set(words) - set(DIGITS) - set(SPECIAL))
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64,
                        **({"id2label": id2label} if id2label else {}))
    BertModel(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def add_teacher(root: Path, hf_folder: Path, epochs: int = 4, seed: int = 0) -> Path:
    """Fine-tune `hf_folder` on root's train split and save it as root/models/teacher."""
    from components.core.atomic import atomic_dir, write_json
    from components.core.config import DistillConfig, FinetuneConfig, ModelConfig, Params, ProjectConfig
    from components.core.paths import Paths
    from components.training.fit_classifier import fit_classifier

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
