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
from components.evaluation.entries import run_entries
from components.stages import table

STAGE = "evaluate"


def _texts(paths: Paths, split: str, n_classes: int):
    from components.data.splits import text_split

    return text_split(paths.split(split), n_classes)


def _optional(folder, labels: list[str], paths: Paths, stage: str):
    """A TextClassifier folder that may hold DISABLED.json instead (or not exist): None then."""
    from pathlib import Path

    folder = Path(folder)
    if not folder.exists() or (folder / "DISABLED.json").is_file():
        return None
    return _load(folder, labels, paths, stage)


def score_all(cfg: Params, paths: Paths, run_id: str | None = None,
              progress: bool = True) -> tuple[dict[str, float], dict]:
    """(flat metrics, extras for plots/notes/the frontier). Reads models/* and data/prepared."""
    from components.data.labels import read_labels
    from components.evaluation import behaviour
    from components.evaluation import teacher as teacher_model
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
    static = _optional(paths.finetuned_static, labels, paths, "finetune")
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
    for prefix, other in (("static", static), ("teacher", teacher)):
        if other is not None:
            t0 = time.perf_counter()
            metrics.update(flatten(prefix, score(other.predict_proba(test_x))))
            timings[f"{prefix}_predict_s"] = time.perf_counter() - t0
    notes: list[str] = []

    t0 = time.perf_counter()
    text_models: dict = {}
    if pair:
        from components.evaluation.pair_baselines import pair_baselines

        found = pair_baselines(train_x, train_y, val_x, val_y, test_x, len(labels), seed)
    else:
        from components.evaluation.baselines import choice_tags, fit_text_models, majority

        fitted, text_models = fit_text_models(train_x, train_y, val_x, val_y, test_x, labels, seed)
        _tag(choice_tags(fitted))
        found = {"majority": majority(train_y, len(labels), len(test_x)),
                 **{name: b.probs for name, b in fitted.items()}}
        extras_baselines = {name: b.best_val for name, b in fitted.items()}
    for name, p in found.items():
        metrics.update(flatten(f"baseline.{name}", score(p)))
    timings["sklearn_baselines_s"] = time.perf_counter() - t0
    m2v = None
    if not pair and _has_model2vec(paths):
        from components.evaluation import model2vec_baseline

        m2v = model2vec_baseline.fit(paths.model2vec, train_x, train_y, val_x, val_y, labels, seed)
        metrics.update(flatten("baseline.model2vec", score(m2v.predict_proba(test_x))))
        timings["model2vec_train_s"] = m2v.train_s
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
              "timings": timings, "student": clf, "teacher": teacher, "test_texts": test_x,
              "entries": run_entries(cfg, paths, clf, static, teacher, text_models, m2v, timings,
                                     {} if pair else extras_baselines),
              "text_models": text_models, "baseline_val": {} if pair else extras_baselines}
    return metrics, extras


def _tag(tags: dict[str, str]) -> None:
    """Set MLflow tags when a run is active (the evaluate stage's); nothing otherwise."""
    import sys

    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.set_tags(tags)


def _has_model2vec(paths: Paths) -> bool:
    return (paths.model2vec / "model.safetensors").is_file()


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
              "notes": notes, "timings": timings, "student": clf, "teacher": None, "test_texts": test_x,
              "entries": run_entries(cfg, paths, clf, None, None, {}, None, timings)}
    return metrics, extras


def _load(folder, labels: list[str], paths: Paths, stage: str):
    """TextClassifier.from_folder, refusing a model trained on other labels."""
    from components.model.classifier import TextClassifier

    clf = TextClassifier.from_folder(folder)
    if clf.labels != labels:
        raise DataError(f"{folder}/config.json: labels {clf.labels} differ from "
                        f"{paths.labels} {labels} (re-run {stage})")
    return clf


def measure_frontier(cfg: Params, paths: Paths, extras: dict) -> tuple[dict, dict]:
    """(reports/frontier.json, reports/speed.json): every entry timed in this process, in
    interleaved rounds at batch 64 and one text at a time (evaluation/frontier.py). speed.json
    keeps its keys: the main student's and the teacher's texts/s and their ratio."""
    import torch

    from components.core.lineage import run_facts
    from components.evaluation import frontier, speed

    texts = list(extras["test_texts"][:speed.MAX_TEXTS])
    entries = extras["entries"]
    timings = frontier.measure(entries, texts, speed.BATCH_SIZE, speed.ROUNDS)
    conditions = {"batch_size": speed.BATCH_SIZE, "rounds": speed.ROUNDS, "n_texts": len(texts),
                  "single_text_samples": min(frontier.SINGLE, len(texts))}
    doc = frontier.document(entries, extras["metrics"], timings, run_facts(paths.root), conditions)
    student = next(e.name for e in entries if e.prefix == "model")
    tps = {name: t["texts_per_s"] for name, t in timings.items()}
    out = {"speed.batch_size": speed.BATCH_SIZE, "speed.n_texts": len(texts), "speed.rounds": speed.ROUNDS,
           "speed.threads": torch.get_num_threads(), "speed.student_texts_per_s": tps[student], "speed.ratio": None}
    if "static" in tps:
        out["speed.static_texts_per_s"] = tps["static"]
    if "teacher" in tps:
        out["speed.teacher_texts_per_s"] = tps["teacher"]
        out["speed.ratio"] = round(tps[student] / tps["teacher"], 3)
    return doc, dict(sorted(out.items()))


def save_baseline(paths: Paths, extras: dict) -> str | None:
    """models/baseline/: the registrable baseline with the best val accuracy (a BowModel folder),
    or DISABLED.json when there is none (pair and multi_label data). Returns its name."""
    from components.core.atomic import atomic_dir, write_json
    from components.evaluation.entries import best_baseline

    name = best_baseline(extras.get("baseline_val") or {}) if extras.get("text_models") else None
    with atomic_dir(paths.baseline) as tmp:
        if name is None:
            write_json(tmp / "DISABLED.json", {"enabled": False, "reason": "no registrable baseline "
                                               "(single_label data only)"})
        else:
            extras["text_models"][name].save(tmp, extra={"role": "baseline",
                                                         "val_accuracy": extras["baseline_val"][name]})
    return name


def write_plots(paths: Paths, metrics: dict[str, float], extras: dict, frontier: dict | None = None) -> list[str]:
    """reports/plots/* (replaced as a whole): confusion, reliability, training curves, frontier.

    Returns the file names written.
    """
    from components.core.atomic import atomic_dir
    from components.evaluation import plots

    with atomic_dir(paths.plots) as folder:
        plots.confusion(extras["actual"], extras["predicted"], extras["labels"], folder)
        plots.reliability(extras["bins"], folder, metrics.get("model.ece"))
        for name in ("pretrain_curve", "finetune_curve"):
            plots.curve(paths.reports / f"{name}.csv", folder / f"{name}.png", name.replace("_", " "))
        if frontier is not None:
            plots.frontier(frontier, folder / "frontier.png")
        drawn = sorted(p.name for p in folder.iterdir())
    return drawn


def run(cfg: Params, paths: Paths) -> dict:
    from components.core.atomic import write_json
    from components.core.tracking import stage_run
    from components.evaluation.frontier import table as frontier_table
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
        extras["metrics"] = metrics
        baseline = save_baseline(paths, extras)
        t1 = time.perf_counter()
        frontier, speed = measure_frontier(cfg, paths, extras)
        extras["timings"]["speed_s"] = time.perf_counter() - t1
        write_json(paths.report("metrics"), metrics)
        write_json(paths.report("speed"), speed)
        write_json(paths.report("frontier"), frontier)
        drawn = write_plots(paths, metrics, extras, frontier)
        extras["timings"]["compute_s"] = time.perf_counter() - t0
        mlflow.log_metrics({**metrics, **{k: float(v) for k, v in speed.items() if v is not None},
                            **{f"time.{k}": v for k, v in extras["timings"].items()}})
        for i, note in enumerate(extras["notes"]):
            mlflow.set_tag(f"evaluate.note.{i}", note[:5000])
        mlflow.log_artifact(str(paths.report("metrics")))
        mlflow.log_artifact(str(paths.report("speed")))
        mlflow.log_artifact(str(paths.report("frontier")))
        mlflow.log_text(frontier_table(frontier), "frontier.md")
        mlflow.log_artifacts(str(paths.plots), artifact_path="plots")
        if baseline:
            mlflow.set_tag("evaluate.best_baseline", baseline)
    summary = {k: metrics[k] for k in ("model.accuracy", "model.macro_f1", "model.micro_f1",
                                       "model.subset_accuracy", "teacher.accuracy",
                                       "baseline.tfidf_lr.accuracy", "baseline.random_init.accuracy",
                                       "model.recall_at_10", "model.mrr", "baseline.tfidf_cosine.recall_at_10")
               if k in metrics}
    if "model.subset_accuracy" in metrics:  # multi_label: its baselines have no accuracy
        summary.update({k: metrics[k] for k in ("baseline.tfidf_lr.macro_f1", "baseline.random_init.macro_f1")
                        if k in metrics})
    summary.update({k: speed[k] for k in ("speed.student_texts_per_s", "speed.static_texts_per_s",
                                          "speed.teacher_texts_per_s", "speed.ratio") if speed.get(k) is not None})
    if "static.accuracy" in metrics:
        summary["static.accuracy"] = metrics["static.accuracy"]
    if extras["notes"]:
        summary["notes"] = extras["notes"]
    summary["plots"] = drawn
    return summary
