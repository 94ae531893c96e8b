"""finetune stage: train the student classifier, export it to models/finetuned/, report.

The training itself is components/training/fit_classifier.py (starting points, training
rows, distillation, multi_label thresholds, pair; shared with the teacher stage and
evaluate's random-init baseline). This stage trains from `finetune.init`, and, for pair with
finetune.bi_encoder.enabled, a bi-encoder from the same starting point
(training/fit_biencoder.py), saved with the classifier (models/finetuned/biencoder/). It
exports the best checkpoint (by val macro-F1) to models/finetuned/ and writes
reports/finetune.json + reports/finetune_curve.csv.
"""

from __future__ import annotations

import time

from components.core.config import Params
from components.core.paths import Paths
from components.stages import table

STAGE = "finetune"


def run(cfg: Params, paths: Paths) -> dict:
    """The stage: train, export models/finetuned/, write the report and the curve."""
    from components.core.atomic import atomic_dir, write_json, write_text
    from components.core.tracking import stage_run
    from components.training.fit_classifier import curve_csv, fit_classifier

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as mlrun:
        import mlflow

        bi = None
        if cfg.finetune.bi_encoder.enabled:  # a wrong label name fails before any training
            from components.data.labels import read_labels
            from components.data.pairs import positive_id
            from components.training.fit_biencoder import fit_biencoder
            from components.training.start import start

            positive_id(read_labels(paths.labels), cfg.finetune.bi_encoder.positive, paths)
        res = fit_classifier(cfg, paths, run_id=mlrun.info.run_id)
        if cfg.finetune.bi_encoder.enabled:
            bi = fit_biencoder(cfg, paths, start(cfg, paths, res.info["init"]), res.classifier.labels,
                               run_id=mlrun.info.run_id)
            res.classifier.biencoder = bi.biencoder
        t0 = time.perf_counter()
        with atomic_dir(paths.finetuned) as tmp:
            res.classifier.save(tmp, extra={"seed": cfg.project.seed})
        compute_s = res.wall_s + time.perf_counter() - t0  # time.compute_s: trainer.fit(s) + export
        compute_s += bi.report["wall_s"] if bi is not None else 0.0
        report = {"init": res.info["init"], "init_kind": res.info["init_kind"],
                  "best_val_f1": res.best_val_f1, "best_val_acc": res.best_val_acc,
                  "epochs": res.epochs, "steps": res.steps, "wall_s": round(res.wall_s, 2),
                  "precision": res.precision, "frozen_params": res.info["frozen_params"],
                  "trainable_params": res.info["trainable_params"],
                  "train_rows": res.info["train_rows"], "distill": res.info["distill"],
                  "augment_copies": res.info["augment_copies"], "augmented_rows": res.info["augmented_rows"],
                  "augmented_dropped_held_out": res.info["augmented_dropped_held_out"],
                  "mlflow_run_id": mlrun.info.run_id}
        if res.info.get("task") == "pair":  # the default report keeps its keys
            report.update(task="pair", segment_embedding=res.info["segment_embedding"])
        if bi is not None:
            report["bi_encoder"] = bi.report
        if "thresholds" in res.info:  # multi_label only: the default report keeps its keys
            report.update(task="multi_label", thresholds=res.info["thresholds"],
                          val_f1_tuned=res.info["val_f1_tuned"])
        write_json(paths.report("finetune"), report)
        write_text(paths.reports / "finetune_curve.csv", curve_csv(res.history))
        mlflow.log_metrics({k: float(v) for k, v in (("best_val_f1", res.best_val_f1),
                            ("best_val_acc", res.best_val_acc), ("wall_s", res.wall_s),
                            ("time.compute_s", compute_s),
                            ("bi_encoder.best_val_mrr", bi and bi.report["best_val_mrr"])) if v is not None})
        mlflow.log_artifact(str(paths.reports / "finetune_curve.csv"))
    return {k: report[k] for k in ("init", "best_val_f1", "best_val_acc", "epochs", "wall_s")}
