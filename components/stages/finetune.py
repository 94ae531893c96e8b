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
from typing import TYPE_CHECKING

from components.core.config import Params
from components.core.paths import Paths
from components.stages import table

if TYPE_CHECKING:
    from components.training.fit_classifier import FitResult

STAGE = "finetune"


DISABLED = "DISABLED.json"  # models/finetuned_static/ without a static student


def _static_off(cfg: Params) -> str:
    """Why there is no static student ("" when there is one)."""
    if not cfg.finetune.static.enabled:
        return "finetune.static.enabled: false"
    if cfg.model.family == "static":
        return "model.family is static: models/finetuned is the static student"
    return ""


def _fit_static(cfg: Params, paths: Paths, run_id: str) -> FitResult | None:
    """The static student (finetune.static), or None (with one line when it is skipped)."""
    reason = _static_off(cfg)
    if reason:
        if cfg.finetune.static.enabled:
            print(f"finetune: no separate static student ({reason})", flush=True)
        return None
    from components.training.fit_classifier import fit_classifier

    return fit_classifier(static_params(cfg), paths, "model2vec", run_id=run_id, tag="static")


def static_params(cfg: Params) -> Params:
    """The Params the static student (finetune.static) trains with: model.family static with an
    MLP of finetune.static.mlp_size, the static section's epochs, batch, lr and dropout, and
    everything else (distillation, patience, precision, ...) from finetune.

    >>> p = static_params(Params())
    >>> p.model.family, p.model.ffn_size, p.finetune.max_epochs, p.finetune.distill == Params().finetune.distill
    ('static', 512, 4, True)
    """
    import dataclasses

    st = cfg.finetune.static
    ft = dataclasses.replace(cfg.finetune, init="model2vec", max_epochs=st.max_epochs, batch_size=st.batch_size,
                             lr=st.lr, dropout=st.dropout, freeze_layers=0, layer_lr_decay=1.0)
    model = dataclasses.replace(cfg.model, family="static", ffn_size=st.mlp_size, pooling="mean", max_length=512)
    return dataclasses.replace(cfg, finetune=ft, model=model)


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
        static = _fit_static(cfg, paths, mlrun.info.run_id)
        if cfg.finetune.bi_encoder.enabled:
            bi = fit_biencoder(cfg, paths, start(cfg, paths, res.info["init"]), res.classifier.labels,
                               run_id=mlrun.info.run_id)
            res.classifier.biencoder = bi.biencoder
        t0 = time.perf_counter()
        with atomic_dir(paths.finetuned) as tmp:
            res.classifier.save(tmp, extra={"seed": cfg.project.seed})
        with atomic_dir(paths.finetuned_static) as tmp:  # DISABLED.json when there is no static student
            if static is not None:
                static.classifier.save(tmp, extra={"seed": cfg.project.seed})
            else:
                write_json(tmp / DISABLED, {"enabled": False, "reason": _static_off(cfg)})
        compute_s = res.wall_s + time.perf_counter() - t0  # time.compute_s: trainer.fit(s) + export
        compute_s += (bi.report["wall_s"] if bi is not None else 0.0) + (static.wall_s if static else 0.0)
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
        if static is not None:
            report["static"] = {"best_val_f1": static.best_val_f1, "best_val_acc": static.best_val_acc,
                                "epochs": static.epochs, "steps": static.steps, "wall_s": round(static.wall_s, 2),
                                "trainable_params": static.info["trainable_params"]}
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
