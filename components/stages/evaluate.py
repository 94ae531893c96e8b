"""evaluate stage: score the fine-tuned model and its baselines on the test split.

Everything is scored by the same code (components.evaluation.metrics) on the same rows:
- model: models/finetuned through TextClassifier (what register will serve),
- teacher: models/teacher, the same way, when the teacher stage is enabled
  (models/teacher/DISABLED.json, or no folder at all: no teacher row),
- baseline.majority / baseline.tfidf_lr / baseline.nbsvm (scikit-learn),
- pair with a bi-encoder (finetune.bi_encoder): its recall@1/5/10 and MRR of retrieving each
  test positive's partner, and the same for baseline.tfidf_cosine (evaluation/biencoder.py),
- baseline.random_init: the same encoder fine-tuned from random weights with
  the same budget (finetune params), when evaluate.random_init_baseline,
- behaviour.*: invariance / directional pass rates of the model.

reports/metrics.json holds flat keys ("model.accuracy", "teacher.macro_f1",
"baseline.tfidf_lr.macro_f1", ...), sorted and rounded to 6 decimals, and no
timings, so the same data + params + seed give the same bytes (`dvc repro -f`
checks that). Speed does vary from run to run, so it goes to reports/speed.json
(components/evaluation/speed.py): student and teacher texts/s on the same test
texts, in this process, and their ratio. Plots and their CSVs go to
reports/plots/. All of it is logged to the stage's MLflow run (speed as speed.*).
"""

from __future__ import annotations

import time

import numpy as np

from components.core.config import Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.stages import table

STAGE = "evaluate"


def _texts(paths: Paths, split: str, n_classes: int):
    from components.data.splits import text_split

    return text_split(paths.split(split), n_classes)


def score_all(cfg: Params, paths: Paths, run_id: str | None = None,
              progress: bool = True) -> tuple[dict[str, float], dict]:
    """(flat metrics, extras for plots/notes). Reads models/finetuned and data/prepared."""
    from components.data.labels import read_labels
    from components.evaluation import behaviour
    from components.evaluation import teacher as teacher_model
    from components.evaluation.baselines import sklearn_baselines
    from components.evaluation.metrics import classification_metrics, flatten, reliability_bins

    from components.data.labels import read_task

    task = read_task(paths.labels)
    if task == "multi_label":
        return score_all_multi(cfg, paths, run_id, progress)
    pair = task == "pair"  # texts are (text, text_pair) tuples; single_label scoring otherwise
    ev, seed = cfg.evaluate, cfg.project.seed
    labels = read_labels(paths.labels)
    clf = _load(paths.finetuned, labels, paths, "finetune")
    if clf.pair != pair:
        raise DataError(f"{paths.finetuned}/config.json: a {clf.task} model, but {paths.labels} is "
                        f"{task} (re-run finetune)")
    teacher_dir = teacher_model.folder(paths.teacher_model)
    teacher = _load(teacher_dir, labels, paths, "teacher") if teacher_dir is not None else None
    test_x, test_y = _texts(paths, "test", len(labels))
    if not test_x:
        raise DataError(f"{paths.split('test')}: the test split is empty; nothing to evaluate")
    train_x, train_y = _texts(paths, "train", len(labels))
    val_x, val_y = _texts(paths, "val", len(labels))

    def score(probs):
        return classification_metrics(probs, test_y, labels, ece_bins=ev.ece_bins,
                                      bootstrap_samples=ev.bootstrap_samples, seed=seed)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    probs = clf.predict_proba(test_x)  # [N, C]
    timings["model_predict_s"] = time.perf_counter() - t0
    metrics = flatten("model", score(probs))
    if teacher is not None:
        t0 = time.perf_counter()
        metrics.update(flatten("teacher", score(teacher.predict_proba(test_x))))
        timings["teacher_predict_s"] = time.perf_counter() - t0
    notes: list[str] = []

    t0 = time.perf_counter()
    if pair:
        from components.evaluation.pair_baselines import pair_baselines as sklearn_baselines
    for name, p in sklearn_baselines(train_x, train_y, val_x, val_y, test_x, len(labels), seed).items():
        metrics.update(flatten(f"baseline.{name}", score(p)))
    timings["sklearn_baselines_s"] = time.perf_counter() - t0
    if pair and clf.biencoder is not None:  # finetune.bi_encoder: retrieval of each test pair's partner
        from components.evaluation.biencoder import score_biencoder

        t0 = time.perf_counter()
        found, choice = score_biencoder(clf.biencoder, labels.index(clf.biencoder.positive), (train_x, train_y),
                                        (val_x, val_y), (test_x, test_y), bootstrap_samples=ev.bootstrap_samples,
                                        seed=seed)
        metrics.update(found)
        notes.append(f"bi-encoder: {int(found.get('retrieval.queries', 0))} test queries, TF-IDF cosine "
                     f"baseline analyzer {choice.get('analyzer', '-')}" if found else
                     f"bi-encoder: no test pair labelled {clf.biencoder.positive!r}; no retrieval scores")
        timings["retrieval_s"] = time.perf_counter() - t0

    if ev.random_init_baseline and cfg.finetune.init == "random":
        notes.append("random_init baseline skipped: the model itself is fine-tuned from random init")
    elif ev.random_init_baseline:
        from components.training.fit_classifier import fit_classifier

        t0 = time.perf_counter()
        res = fit_classifier(cfg, paths, "random", run_id=run_id, tag="random_init", progress=progress)
        metrics.update(flatten("baseline.random_init", score(res.classifier.predict_proba(test_x))))
        timings["random_init_train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if pair:
        notes.append("behaviour checks: skipped for pair (they rewrite single texts)")
    else:
        checks, check_notes = behaviour.run_checks(clf.predict_proba, test_x, labels, seed=seed)
        metrics.update(flatten("behaviour", checks))
        notes += check_notes
    timings["behaviour_s"] = time.perf_counter() - t0

    extras = {"labels": labels, "actual": test_y, "predicted": probs.argmax(axis=1),
              "bins": reliability_bins(probs, test_y, ev.ece_bins), "notes": notes,
              "timings": timings, "student": clf, "teacher": teacher, "test_texts": test_x}
    return metrics, extras


def score_all_multi(cfg: Params, paths: Paths, run_id: str | None = None,
                    progress: bool = True) -> tuple[dict[str, float], dict]:
    """score_all for multi_label data: the model (its tuned thresholds), the one-vs-rest
    baselines and the random-init ablation, all through evaluation.multilabel; behaviour:
    the invariance checks on the whole label set. No teacher (single_label only)."""
    from components.data.labels import read_labels
    from components.evaluation import behaviour
    from components.evaluation.metrics import flatten
    from components.evaluation.multilabel import multilabel_metrics
    from components.evaluation.multilabel_baselines import multilabel_baselines

    ev, seed = cfg.evaluate, cfg.project.seed
    labels = read_labels(paths.labels)
    clf = _load(paths.finetuned, labels, paths, "finetune")
    if not clf.multi_label:
        raise DataError(f"{paths.finetuned}/config.json: a single_label model, but {paths.labels} is "
                        "multi_label (re-run finetune)")
    test_x, test_y = _texts(paths, "test", len(labels))  # test_y [N, C] 0/1
    if not test_x:
        raise DataError(f"{paths.split('test')}: the test split is empty; nothing to evaluate")
    train_x, train_y = _texts(paths, "train", len(labels))
    val_x, val_y = _texts(paths, "val", len(labels))

    def score(probs, thresholds):
        return multilabel_metrics(probs, test_y, labels, thresholds, ece_bins=ev.ece_bins,
                                  bootstrap_samples=ev.bootstrap_samples, seed=seed)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    probs = clf.predict_proba(test_x)  # [N, C] sigmoid
    timings["model_predict_s"] = time.perf_counter() - t0
    metrics = flatten("model", score(probs, clf.thresholds))
    notes = ["teacher: none (single_label only)"]
    t0 = time.perf_counter()
    for name, (p, thresholds) in multilabel_baselines(train_x, train_y, val_x, val_y, test_x, seed).items():
        metrics.update(flatten(f"baseline.{name}", score(p, thresholds)))
    timings["sklearn_baselines_s"] = time.perf_counter() - t0
    if ev.random_init_baseline and cfg.finetune.init == "random":
        notes.append("random_init baseline skipped: the model itself is fine-tuned from random init")
    elif ev.random_init_baseline:
        from components.training.fit_classifier import fit_classifier

        t0 = time.perf_counter()
        rnd = fit_classifier(cfg, paths, "random", run_id=run_id, tag="random_init", progress=progress).classifier
        metrics.update(flatten("baseline.random_init", score(rnd.predict_proba(test_x), rnd.thresholds)))
        timings["random_init_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    checks, check_notes = behaviour.run_checks(clf.predict_proba, test_x, labels, seed=seed, decide=clf.decide)
    metrics.update(flatten("behaviour", checks))
    notes += check_notes
    timings["behaviour_s"] = time.perf_counter() - t0

    # Plots: per (row, label) "<label>" / "not <label>" pairs (a 2x2 block per label), and the
    # reliability of every (row, label) probability as a binary prediction.
    from components.evaluation.metrics import reliability_bins

    pred = clf.decide(probs)  # [N, C]
    names = [x for name in labels for x in (name, f"not {name}")]
    actual = (2 * np.arange(len(labels))[None, :] + (1 - test_y.astype(np.int64))).reshape(-1)
    predicted = (2 * np.arange(len(labels))[None, :] + (1 - pred)).reshape(-1)
    flat = probs.reshape(-1).astype(np.float64)
    extras = {"labels": names, "actual": actual, "predicted": predicted,
              "bins": reliability_bins(np.stack([1 - flat, flat], axis=1), test_y.reshape(-1).astype(np.int64),
                                       ev.ece_bins),
              "notes": notes, "timings": timings, "student": clf, "teacher": None, "test_texts": test_x}
    return metrics, extras


def _load(folder, labels: list[str], paths: Paths, stage: str):
    """TextClassifier.from_folder, refusing a model trained on other labels."""
    from components.model.classifier import TextClassifier

    clf = TextClassifier.from_folder(folder)
    if clf.labels != labels:
        raise DataError(f"{folder}/config.json: labels {clf.labels} differ from "
                        f"{paths.labels} {labels} (re-run {stage})")
    return clf


def measure_speed(extras: dict) -> dict:
    """reports/speed.json: student (and teacher) texts/s on the test texts, and their ratio."""
    from components.evaluation import speed

    teacher = extras["teacher"]
    return speed.report(extras["student"].predict_proba, teacher.predict_proba if teacher else None,
                        extras["test_texts"])


def write_plots(paths: Paths, metrics: dict[str, float], extras: dict) -> list[str]:
    """reports/plots/* (replaced as a whole): confusion, reliability, training curves.

    Returns the file names written.
    """
    from components.core.atomic import atomic_dir
    from components.evaluation import plots

    with atomic_dir(paths.plots) as folder:
        plots.confusion(extras["actual"], extras["predicted"], extras["labels"], folder)
        plots.reliability(extras["bins"], folder, metrics.get("model.ece"))
        for name in ("pretrain_curve", "finetune_curve"):
            plots.curve(paths.reports / f"{name}.csv", folder / f"{name}.png", name.replace("_", " "))
        drawn = sorted(p.name for p in folder.iterdir())
    return drawn


def run(cfg: Params, paths: Paths) -> dict:
    from components.core.atomic import write_json
    from components.core.tracking import stage_run
    from components.evaluation.metrics import rounded

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as mlrun:
        import mlflow

        # imported before the compute timer starts (imports are overhead, not compute)
        import sklearn.linear_model  # noqa: F401
        import torchmetrics  # noqa: F401

        from components.model import classifier  # noqa: F401
        if cfg.evaluate.random_init_baseline:
            import pytorch_lightning  # noqa: F401
        if (paths.teacher_model / "config.json").is_file():
            import transformers  # noqa: F401  (the teacher's Hugging Face backbone)

        # time.compute_s: scoring, baselines, behaviour checks, plots, speed (time.speed_s)
        t0 = time.perf_counter()
        metrics, extras = score_all(cfg, paths, run_id=mlrun.info.run_id)
        metrics = rounded(metrics)
        write_json(paths.report("metrics"), metrics)
        drawn = write_plots(paths, metrics, extras)
        t1 = time.perf_counter()
        speed = measure_speed(extras)
        write_json(paths.report("speed"), speed)
        extras["timings"]["speed_s"] = time.perf_counter() - t1
        extras["timings"]["compute_s"] = time.perf_counter() - t0
        mlflow.log_metrics({**metrics, **{k: float(v) for k, v in speed.items() if v is not None},
                            **{f"time.{k}": v for k, v in extras["timings"].items()}})
        for i, note in enumerate(extras["notes"]):
            mlflow.set_tag(f"evaluate.note.{i}", note[:5000])
        mlflow.log_artifact(str(paths.report("metrics")))
        mlflow.log_artifact(str(paths.report("speed")))
        mlflow.log_artifacts(str(paths.plots), artifact_path="plots")
    summary = {k: metrics[k] for k in ("model.accuracy", "model.macro_f1", "model.micro_f1",
                                       "model.subset_accuracy", "teacher.accuracy",
                                       "baseline.tfidf_lr.accuracy", "baseline.random_init.accuracy",
                                       "model.recall_at_10", "model.mrr", "baseline.tfidf_cosine.recall_at_10")
               if k in metrics}
    if "model.subset_accuracy" in metrics:  # multi_label: its baselines have no accuracy
        summary.update({k: metrics[k] for k in ("baseline.tfidf_lr.macro_f1", "baseline.random_init.macro_f1")
                        if k in metrics})
    summary.update({k: speed[k] for k in ("speed.student_texts_per_s", "speed.teacher_texts_per_s",
                                          "speed.ratio") if speed.get(k) is not None})
    if extras["notes"]:
        summary["notes"] = extras["notes"]
    summary["plots"] = drawn
    return summary
