"""Every model of a run as a frontier entry (evaluation/frontier.py): how to call it, its size,
what its training cost, and the registered model it becomes.

Training seconds come from the stages' own reports (read when present; a model whose report is
missing gets null): the transformer student is pretrain + finetune, the static student its
finetune fit + the model2vec distillation, the teacher its fine-tuning, the model2vec baseline
the same distillation + its fit, the bag-of-words baselines evaluate's fit of both (their
counts are shared, so each shows the pair's time).
"""

from __future__ import annotations

import json

from components.core.paths import Paths
from components.evaluation.frontier import Entry, folder_mb, n_params


def _report(paths: Paths, name: str) -> dict:
    try:
        data = json.loads(paths.report(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sum(*values) -> float | None:
    """Sum of the numbers among `values`; None when none is a number."""
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(nums) if nums else None


def registered_names(model_name: str) -> dict[str, str]:
    """frontier name -> registered model name (what register.py registers each as)."""
    return {"transformer": model_name, "static": f"{model_name}-static", "teacher": f"{model_name}-teacher",
            "tfidf_lr": f"{model_name}-baseline", "nbsvm": f"{model_name}-baseline"}


def run_entries(cfg, paths: Paths, clf, static, teacher, text_models: dict, m2v, timings: dict,
                baseline_val: dict | None = None) -> list[Entry]:
    """The frontier entries of this run (the timed ones get a predict function). Of the
    bag-of-words baselines only the best by val accuracy (`baseline_val`) may be registered."""
    pre, fin, tea = _report(paths, "pretrain"), _report(paths, "finetune"), _report(paths, "teacher")
    distill_s = (tea.get("model2vec") or {}).get("distill_s")
    names = registered_names(cfg.register.model_name)
    served = "onnx" if getattr(cfg.register, "serving", "torch") == "onnx" else "torch"
    main = clf.net.backbone.cfg.family if hasattr(clf.net.backbone, "cfg") else "hf"
    main_name = "transformer" if main == "transformer" else main
    out = [Entry("majority", "baseline", "baseline.majority", None, params=0, train_s=0.0)]
    best = best_baseline(baseline_val or {})
    for name, model in text_models.items():
        out.append(Entry(name, "baseline", f"baseline.{name}", model.predict_proba,
                         params=sum(int(m.coef_.size + m.intercept_.size) for m in model.models if m is not None),
                         disk_mb=None, train_s=timings.get("sklearn_baselines_s"),
                         registered_as=names[name] if name == best else None, served="sklearn" if name == best else None))
    if m2v is not None:
        out.append(Entry("model2vec", "baseline", "baseline.model2vec", m2v.predict_proba, params=m2v.params,
                         disk_mb=folder_mb(paths.model2vec), train_s=_sum(distill_s, m2v.train_s)))
    if static is not None:
        out.append(Entry("static", "student", "static", static.predict_proba, params=n_params(static.net),
                         disk_mb=folder_mb(paths.finetuned_static),
                         train_s=_sum((fin.get("static") or {}).get("wall_s"), distill_s),
                         registered_as=names["static"], served=served))
    out.append(Entry(main_name, "student", "model", clf.predict_proba, params=n_params(clf.net),
                     disk_mb=folder_mb(paths.finetuned),
                     train_s=_sum(fin.get("wall_s"), pre.get("wall_seconds") if main_name != "static" else distill_s),
                     registered_as=cfg.register.model_name, served=served))
    if teacher is not None:
        out.append(Entry("teacher", "teacher", "teacher", teacher.predict_proba, params=n_params(teacher.net),
                         disk_mb=folder_mb(paths.teacher_model), train_s=tea.get("train_wall_s"),
                         registered_as=names["teacher"], served=served))
    return out


def best_baseline(val_accuracy: dict[str, float | None]) -> str | None:
    """The registrable baseline with the best val accuracy (ties: tfidf_lr, then nbsvm).

    >>> best_baseline({"tfidf_lr": 0.80, "nbsvm": 0.81}), best_baseline({"tfidf_lr": 0.8, "nbsvm": 0.8})
    ('nbsvm', 'tfidf_lr')
    """
    order = ["tfidf_lr", "nbsvm"] + sorted(n for n in val_accuracy if n not in ("tfidf_lr", "nbsvm"))
    scored = [(val_accuracy[n], -i, n) for i, n in enumerate(order) if val_accuracy.get(n) is not None]
    return max(scored)[2] if scored else None
