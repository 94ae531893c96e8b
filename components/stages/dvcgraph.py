"""dvc.yaml, rendered from the stage table (components/stages/table.py).

dvc.yaml is generated, never edited by hand: after changing STAGES (or the
imports of a stage module), run

    python -m components.stages.dvcgraph          # rewrite dvc.yaml
    python -m components.stages.dvcgraph --check  # exit 1 if dvc.yaml is stale

tests/test_dvc.py fails when the committed dvc.yaml differs from `render()`.

Each stage becomes `cmd: encoderflow stage NAME` with
- deps: the stage's data inputs, then the code it runs: components/core/config.py
  plus every `components` module the stage module imports, transitively
  (found by reading the import statements, lazy ones included). Shared
  plumbing (everything in components/core/, plus the stage table and this
  file) is left out on purpose: editing it must not retrain every model.
- params: whole params.yaml sections (DVC tracks every key inside them);
- outs (cached), metrics and plots (cache: false, so they live in git).
The top-level `plots:` (PLOT_VIEWS) tells `dvc plots show` which columns to draw.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from components.core.imports import module_file as _module_file
from components.core.imports import walk
from components.stages.table import STAGES, Stage

ROOT = Path(__file__).resolve().parents[2]
HEADER = ("# Generated from components/stages/table.py by `python -m components.stages.dvcgraph`.\n"
          "# Do not edit by hand: change the stage table and re-run that command.\n")
CONFIG_DEP = "components/core/config.py"
# Modules that carry no stage logic; a change there does not invalidate outputs.
PLUMBING_PACKAGE = "components.core"
PLUMBING = frozenset({"components", PLUMBING_PACKAGE, "components.stages", "components.stages.table",
                      "components.stages.dvcgraph"})


def is_plumbing(name: str) -> bool:
    """
    >>> [is_plumbing(m) for m in ("components.core.paths", "components.stages.pretrain")]
    [True, False]
    """
    return name in PLUMBING or name.startswith(PLUMBING_PACKAGE + ".")


# How `dvc plots show` draws the CSVs the stages write: on the stage's own plots
# entry when the stage declares that file, as a top-level `plots:` view when it
# declares the folder (reports/plots/: its PNGs and CSVs are also drawn as-is).
# Column names are the stages' CSV headers; tests/test_dvc.py checks them.
PLOT_VIEWS: tuple[tuple[str, dict], ...] = (
    ("reports/pretrain_curve.csv", {"title": "pretrain: MLM loss", "x": "step", "y": "loss"}),
    # stage-level views take one y column (DVC's schema): the model-selection metric
    ("reports/finetune_curve.csv", {"title": "finetune: val F1 per epoch", "x": "epoch",
                                    "y": "val_f1"}),
    ("reports/plots/confusion.csv", {"title": "test confusion matrix", "template": "confusion",
                                     "x": "actual", "y": "predicted"}),
    ("reports/plots/reliability.csv", {"title": "reliability (test)", "x": "confidence",
                                       "y": "accuracy"}),
)


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """`components.model.io` -> components/model/io.py (or a package __init__.py)."""
    return _module_file(root, name)


def code_modules(module: str, root: Path = ROOT) -> list[str]:
    """The stage module plus its transitive `components` imports, minus plumbing.

    Parent packages count too (importing components.model.io runs
    components/model/__init__.py), unless their file is empty.
    """
    seen, _ = walk(root, [module], own=("components",))
    return sorted(m for m in seen if not is_plumbing(m) and (m == module or _has_code(m, root)))


def _has_code(name: str, root: Path) -> bool:
    """A module file that exists and is not empty (DVC warns on empty deps;
    an empty package __init__.py carries no logic)."""
    path = module_file(name, root)
    return path is not None and path.stat().st_size > 0


def code_deps(stage: Stage, root: Path = ROOT) -> list[str]:
    """components/core/config.py + the files of `code_modules` (relative, sorted)."""
    files = {CONFIG_DEP}
    for name in code_modules(stage.module, root):
        path = module_file(name, root)
        rel = path.relative_to(root).as_posix() if path else name.replace(".", "/") + ".py"
        files.add(rel)
    return sorted(files)


def stage_entry(stage: Stage, root: Path = ROOT) -> dict:
    entry: dict = {"cmd": f"encoderflow stage {stage.name}",
                   "deps": list(stage.deps) + code_deps(stage, root),
                   "params": list(stage.params)}
    if stage.outs:
        entry["outs"] = list(stage.outs)
    if stage.metrics:
        entry["metrics"] = [{m: {"cache": False}} for m in stage.metrics]
    if stage.plots:
        views = dict(PLOT_VIEWS)  # a file's view goes on its own entry: drawn once
        entry["plots"] = [{p: {"cache": False, **views.get(p, {})}} for p in stage.plots]
    return entry


def render(stages: tuple[Stage, ...] = STAGES, root: Path = ROOT) -> str:
    """The full text of dvc.yaml for `stages` (deterministic)."""
    doc: dict = {"stages": {s.name: stage_entry(s, root) for s in stages}}
    # Files inside a declared plots folder (reports/plots/) get top-level views.
    folders = [p.rstrip("/") + "/" for s in stages for p in s.plots]
    views = [{path: dict(view)} for path, view in PLOT_VIEWS
             if view and any(path.startswith(f) for f in folders)]
    if views:
        doc["plots"] = views
    return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = ROOT / "dvc.yaml"
    text = render()
    current = target.read_text(encoding="utf-8") if target.is_file() else ""
    if "--check" in argv:
        if current != text:
            print("dvc.yaml is stale: run `python -m components.stages.dvcgraph`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
