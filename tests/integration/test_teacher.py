"""teacher stage: a tiny HF BERT teacher (saved with save_pretrained, no hub) on a tiny
prepared dataset: outputs, the transfer-set contract, determinism, disabled mode, and
each bad input's one-line error with nothing written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from components.core.config import (
    DistillConfig,
    FinetuneConfig,
    Params,
    PretrainConfig,
    ProjectConfig,
    StaticStudentConfig,
    TeacherConfig,
)
from components.core.errors import ConfigError, DataError
from components.core.paths import Paths
from components.data import transfer_write
from components.model import hf_checkpoint
from components.model.classifier import TextClassifier
from components.stages import teacher

from builders import cls_project as cp
from builders.teacher_model import tiny_bert

N_TRAIN, N_VAL, N_TEST, COPIES = 48, 12, 12, 2
UNLABELED = ["the film was fine", "a story with mary", "acting and music"]


def make_prepared(root: Path, texts=None) -> Paths:
    """data/prepared (train/val/test/unlabeled + labels.json), no tokenize stage needed."""
    rows = texts or cp.toy_texts(N_TRAIN + N_VAL + N_TEST, seed=0)
    return cp.write_prepared(root, rows, N_TRAIN, N_VAL, UNLABELED)


def params(root: Path, init, **teacher_kw) -> Params:
    t = dict(enabled=True, init=str(init), max_epochs=2, min_steps=0, batch_size=8, lr=3e-3, patience=2, precision="32",
             augment_copies=COPIES, label_batch_size=16, max_length=32)
    t.update(teacher_kw)
    base = t.get("base", True)  # without the base outputs nothing may need them (the config checks)
    # finetune does not distil here (a disabled teacher requires that; the stage ignores finetune)
    return Params(project=ProjectConfig(seed=7, tracking_uri=f"sqlite:///{root}/mlflow.db"),
                  teacher=TeacherConfig(**t), pretrain=PretrainConfig(vector_weight=1.0 if base else 0.0),
                  finetune=FinetuneConfig(distill=DistillConfig(enabled=False),
                                          static=StaticStudentConfig(enabled=base)))


def outputs(paths: Paths) -> set[str]:
    """Every file the stage may write (its outs, report and checkpoints)."""
    found = set()
    for top in (paths.teacher_model, paths.teacher_transfer.parent, paths.reports, paths.checkpoints):
        if top.exists():
            found |= {p.relative_to(paths.root).as_posix() for p in top.rglob("*")}
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One enabled run, shared by the read-only checks below."""
    root = tmp_path_factory.mktemp("teacher")
    paths = make_prepared(root)
    folder = tiny_bert(root / "hf_teacher")
    summary = teacher.run(params(root, folder), paths)
    return paths, folder, summary


def test_outputs_and_transfer_set_contract(project):
    paths, _, summary = project
    table = pq.read_table(paths.teacher_transfer)
    assert table.schema.equals(transfer_write.schema())
    df = table.to_pandas()
    n_base = N_TRAIN + len(UNLABELED)
    assert len(df) == n_base + COPIES * n_base == summary["transfer_total"]
    assert df["source"].value_counts().to_dict() == {"train": N_TRAIN, "unlabeled": len(UNLABELED),
                                                     "augmented": COPIES * n_base}
    train = pd.read_parquet(paths.split("train"))
    gold = df[df["source"] == "train"]
    assert gold["text"].tolist() == train["text"].tolist()
    assert gold["label"].astype("int64").tolist() == train["label"].tolist()
    assert df.loc[df["source"] != "train", "label"].isna().all()
    held_out = set(pd.read_parquet(paths.split("val"))["text"]) | set(pd.read_parquet(paths.split("test"))["text"])
    assert not held_out & set(df["text"])
    probs = np.stack(df["probabilities"].to_numpy())
    assert probs.shape == (len(df), 2) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert df.loc[df["source"] == "augmented", "text"].str.contains(r"\[MASK\]").any()  # teacher's mask token

    report = json.loads(paths.report("teacher").read_text())
    assert report["enabled"] is True and report["init"] == summary["init"]
    assert report["transfer_rows"] == {"train": N_TRAIN, "unlabeled": len(UNLABELED), "augmented": COPIES * n_base}
    assert report["epochs"] == 2 and report["dropped_held_out"] == 0 and report["unk_rate"] == 0
    for key in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1"):
        assert 0 <= report[key] <= 1
    assert report["train_wall_s"] > 0 and report["label_s"] > 0 and report["label_texts_per_s"] > 0


def test_the_transfer_set_is_what_finetune_reads(project):
    from components.data import transfer

    paths, _, _ = project
    read = transfer.read_transfer(paths.teacher_transfer, len(cp.LABELS))
    assert read.rows_by_source()["train"] == N_TRAIN and read.probs.dtype == np.float32


def test_models_teacher_is_a_text_classifier_folder(project):
    paths, _, _ = project
    clf = TextClassifier.from_folder(paths.teacher_model)
    assert clf.labels == cp.LABELS and clf.meta["role"] == "teacher"
    assert clf.meta["init"] == str(project[1])  # the params value
    texts = ["a great fun film", "boring and awful"]
    p = clf.predict_proba(texts)
    assert p.shape == (2, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert set(clf.predict(texts)) <= set(cp.LABELS)
    # the transfer set's train rows are the folder's own predictions (fp32 here)
    df = pd.read_parquet(paths.teacher_transfer)
    first = df[df["source"] == "train"].head(8)
    assert np.allclose(np.stack(first["probabilities"].to_numpy()), clf.predict_proba(first["text"].tolist()),
                       atol=1e-5)
    # ... and its `vector` column is the pooled vector that the head reads, on every row
    assert np.allclose(np.stack(first["vector"].to_numpy()), clf.embed(first["text"].tolist()), atol=1e-5)
    assert df["vector"].map(len).eq(clf.net.backbone.output_size).all()


def test_a_second_run_writes_the_same_bytes(project, tmp_path):
    paths, folder, _ = project
    again = make_prepared(tmp_path)
    teacher.run(params(tmp_path, folder), again)
    assert again.teacher_transfer.read_bytes() == paths.teacher_transfer.read_bytes()
    assert (again.teacher_model / "model.safetensors").read_bytes() == \
        (paths.teacher_model / "model.safetensors").read_bytes()


def test_disabled_writes_empty_outputs(tmp_path, monkeypatch):
    from components.training import fit_classifier as training

    def no_training(*args, **kwargs):
        raise AssertionError("a disabled teacher must not train")

    monkeypatch.setattr(training, "fit_classifier", no_training)
    paths = Paths.at(tmp_path)  # no data at all: the no-op reads nothing
    assert teacher.run(params(tmp_path, "no/such/folder", enabled=False, base=False), paths) == {"enabled": False}
    assert json.loads(paths.report("teacher").read_text()) == {"enabled": False, "base": False}
    assert [p.name for p in paths.teacher_model.iterdir()] == [teacher.DISABLED]
    table = pq.read_table(paths.teacher_transfer)
    assert table.num_rows == 0 and table.schema.equals(transfer_write.schema())
    # the stage's MLflow run still exists (one child run per stage in a pipeline run)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [(r.info.run_name, r.data.params["teacher.enabled"]) for r in runs] == [("teacher", "False")]


def _fails(tmp_path, cfg, paths, exc, *needles):
    before = outputs(paths)
    with pytest.raises(exc) as err:
        teacher.run(cfg, paths)
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    assert outputs(paths) == before and not (tmp_path / "mlflow.db").exists()
    return msg


def test_init_neither_folder_nor_package(tmp_path):
    paths = make_prepared(tmp_path)
    _fails(tmp_path, params(tmp_path, "no/such/folder"), paths, ConfigError, "teacher.init", "'no/such/folder'")
    _fails(tmp_path, params(tmp_path, "no_such_teacher_pkg"), paths, ConfigError, "teacher.init")


def test_teacher_without_fast_tokenizer(tmp_path):
    paths = make_prepared(tmp_path)
    folder = tiny_bert(tmp_path / "hf")
    (folder / "tokenizer.json").unlink()
    _fails(tmp_path, params(tmp_path, folder), paths, DataError, "tokenizer.json", str(folder))


def test_teacher_labels_must_match_the_data(tmp_path):
    paths = make_prepared(tmp_path)
    folder = tiny_bert(tmp_path / "hf", id2label={0: "positive", 1: "negative"})
    _fails(tmp_path, params(tmp_path, folder), paths, DataError, "['positive', 'negative']",
           "data/prepared/labels.json", "['negative', 'positive']")
    # HF's placeholder names (LABEL_0, LABEL_1) say nothing: accepted
    placeholder = tiny_bert(tmp_path / "hf2")
    tok = hf_checkpoint.vet(placeholder, cp.LABELS, "labels.json")  # the folder's fast tokenizer, unpadded
    assert tok.get_vocab() == Tokenizer.from_file(str(placeholder / "tokenizer.json")).get_vocab()
    assert tok.padding is None and tok.truncation is None
    assert tok.encode("a great film").tokens == ["[CLS]", "a", "great", "film", "[SEP]"]


def test_unknown_language_warns_once(tmp_path, capsys):
    greek = ["η ταινία ήταν υπέροχη", "βαρετή και κακή ταινία", "πολύ καλή ιστορία", "κακή ηθοποιία"]
    rows = [(f"{greek[i % 4]} {i}", int(i % 4 in (0, 2))) for i in range(N_TRAIN + N_VAL + N_TEST)]
    paths = make_prepared(tmp_path, rows)
    folder = tiny_bert(tmp_path / "hf")
    before = outputs(paths)
    with pytest.raises(DataError) as err:  # over teacher.max_unk_rate (0.25): stop before any training
        teacher.run(params(tmp_path, folder, max_epochs=1, augment_copies=0), paths)
    assert "teacher.max_unk_rate 0.25" in str(err.value) and "\n" not in str(err.value)
    assert "multilingual" in str(err.value) and "teacher.enabled: false" in str(err.value)
    assert outputs(paths) == before  # nothing written
    cfg = params(tmp_path, folder, max_epochs=1, augment_copies=0, max_unk_rate=0.9)
    teacher.run(cfg, paths)
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: teacher:")]
    assert len(warnings) == 1 and "multilingual" in warnings[0] and "teacher.enabled: false" in warnings[0]
    assert json.loads(paths.report("teacher").read_text())["unk_rate"] > teacher.UNK_WARN


def test_training_params_ignore_the_finetune_and_model_sections(tmp_path):
    cfg = params(tmp_path, "x")
    noisy = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pooling="cls", max_length=16))
    a, b = teacher.training_params(cfg, tmp_path, 100), teacher.training_params(noisy, tmp_path, 100)
    assert a.finetune == b.finetune and a.model == b.model and a.model.pooling == "mean"
    assert a.finetune.lr == cfg.teacher.lr and not a.finetune.distill.enabled


def test_few_labels_train_to_min_steps(tmp_path):
    """48 train rows at batch 8 are 6 steps an epoch: min_steps 15 lifts max_epochs 1 to 3 epochs,
    and early stopping (patience 1) may not end the run before step 15."""
    paths = make_prepared(tmp_path)
    folder = tiny_bert(tmp_path / "hf_teacher")
    cfg = params(tmp_path, folder, max_epochs=1, min_steps=15, patience=1, augment_copies=0)
    assert teacher.training_params(cfg, folder, N_TRAIN).finetune.max_epochs == 3
    teacher.run(cfg, paths)
    report = json.loads(paths.report("teacher").read_text())
    assert report["epochs"] == 3 and report["steps"] >= 15
