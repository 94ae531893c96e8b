"""The workspace of the student benchmarks (quality.py's frontier, label_efficiency.py): the
folder the stages run in.

Without --project a scratch project (the built-in sample as `encoderflow run` would see it,
or with --smoke a tiny synthetic CSV project with a tiny Hugging Face BERT as its teacher)
where ingest, validate, teacher and tokenize run once. With --project PATH a fresh folder
whose data/prepared, data/teacher, models/teacher (and models/tokenizer, data/tokenized when
PATH has them) are links to PATH's: the benchmarks never write into PATH's stage outputs.
Stages run as themselves (`components.stages.<name>.run(cfg, paths)`), with cfg =
params.yaml + --set + the script's overrides through `load_params`.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common as C
from benchmarks import _report

ROOT = C.ROOT
LINKED = ("data/prepared", "data/teacher", "models/teacher", "models/model2vec", "models/tokenizer",
          "data/tokenized")


def run_stage(name: str, cfg, root: Path) -> float:
    """One stage in-process (its own `run(cfg, paths)`); returns its seconds."""
    from components.core.paths import Paths
    from components.stages import table

    print(f"[{time.strftime('%H:%M:%S')}] stage {name} in {root} ...", flush=True)
    t0 = time.perf_counter()
    with C.in_dir(root):
        table.get(name).load()(cfg, Paths.at(root))
    seconds = time.perf_counter() - t0
    print(f"[{time.strftime('%H:%M:%S')}] stage {name}: {seconds:.1f} s", flush=True)
    return seconds


@dataclasses.dataclass
class Workspace:
    source: Path  # the --project folder, or the scratch project (holds the pretrained cache)
    root: Path  # where the stages run and write
    params_file: Path
    overrides: list[str]  # --set values plus what the workspace needs (smoke settings, store)
    scratch: Path | None  # a folder to delete at the end (None: keep)
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def cfg(self, *extra: str):
        return C.load_cfg(self.params_file, [*self.overrides, *extra])

    @property
    def paths(self):
        from components.core.paths import Paths

        return Paths.at(self.root)

    def close(self, keep: bool) -> None:
        if self.scratch is None:
            return
        if keep:
            print(f"kept: {self.root} (pass --project {self.source} to reuse its data, teacher and "
                  "pretrained encoders)")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)


def add_workspace_args(ap, smoke_help: str) -> None:
    ap.add_argument("--project", type=Path, help="reuse this project's data/prepared, data/teacher and "
                    "models/teacher (and models/tokenizer + data/tokenized if present) instead of building "
                    "a scratch sample project; its stage outputs are only read")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="params override on top of the project's params.yaml (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch / work folder")
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    _report.add_json_option(ap)


def open_workspace(args, need_teacher: bool, run_teacher: bool = True) -> Workspace:
    """The folder the stages run in, with data/prepared, the teacher's outputs (when `need_teacher`
    with --project; when `run_teacher` and teacher.enabled in a scratch project) and the tokenizer."""
    if args.project is not None:
        return _linked(args.project.resolve(), args.overrides, need_teacher, args.keep)
    tmp = Path(tempfile.mkdtemp(prefix="encoderflow-students-"))
    try:
        if args.smoke:
            root = make_smoke_project(tmp / "p")
        else:
            from benchmarks.pipeline_overhead import make_sample_project

            root = make_sample_project(tmp / "p")
        params = root / "params.yaml"
        ws = Workspace(root, root, params, [*_fixed(root, params, args.overrides, root), *args.overrides], tmp)
        print(f"scratch project: {root}", flush=True)
        cfg = ws.cfg()
        for name in ("ingest", "validate", "teacher", "tokenize"):
            if name == "teacher" and not (run_teacher and cfg.teacher.enabled):
                continue
            ws.stage_seconds[name] = run_stage(name, cfg, root)
    except BaseException:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ws


def _fixed(project: Path, params: Path, overrides: list[str], work: Path) -> list[str]:
    """Overrides that let stages run from any folder: one absolute MLflow store (the work
    folder's), and an absolute teacher.init when params name a folder inside the project."""
    out = [f"project.tracking_uri=sqlite:///{work / 'mlflow.db'}"]
    init = C.load_cfg(params, overrides).teacher.init
    if not Path(init).is_absolute() and (project / init).exists():
        out.append(f"teacher.init={project / init}")
    return out


def _linked(project: Path, overrides: list[str], need_teacher: bool, keep: bool) -> Workspace:
    from components.core.paths import Paths

    src = Paths.at(project)
    missing = [p for p in (src.prepared, *([src.teacher_transfer, src.teacher_model] if need_teacher else ()))
               if not p.exists()]
    if missing:
        raise SystemExit(f"error: --project {project}: {missing[0]} not found (run ingest, validate and "
                         "teacher there first, or leave --project out to build a scratch project)")
    params = C.params_file(project)
    C.load_cfg(params, overrides)  # a bad --set fails before anything is made
    work = Path(tempfile.mkdtemp(prefix="encoderflow-students-"))
    for rel in LINKED:
        if (project / rel).exists():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).symlink_to(project / rel)
    ws = Workspace(project, work, params, [*_fixed(project, params, overrides, work), *overrides], work)
    print(f"project: {project} (its stage outputs are only read); work folder: {work}", flush=True)
    if not (work / "data" / "tokenized").exists() or not (work / "models" / "tokenizer").exists():
        for rel in ("data/tokenized", "models/tokenizer"):
            if (work / rel).is_symlink():
                (work / rel).unlink()
        try:
            ws.stage_seconds["tokenize"] = run_stage("tokenize", ws.cfg(), work)
        except BaseException:
            ws.close(keep)
            raise
    return ws


# --------------------------------------------------------------------------- smoke project


def make_smoke_project(root: Path, n: int = 320) -> Path:
    """tests/tiny_pipeline's synthetic CSV project, with a tiny BERT (save_pretrained, its vocabulary
    the corpus words) as an enabled teacher and distillation on, written into its params.yaml (so
    --project can reuse it)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import tiny_pipeline

    root.mkdir(parents=True)
    make_tiny_bert(root / "tiny-bert", tiny_pipeline.POS + tiny_pipeline.NEG + tiny_pipeline.FILL)
    tiny_pipeline.write_project(root, n=n, overrides={
        "teacher": {"enabled": True, "base": True, "init": "tiny-bert", "max_epochs": 2, "batch_size": 16, "lr": 0.003,
                    "patience": 2, "precision": "32", "augment_copies": 1, "label_batch_size": 64,
                    "max_length": 32},
        "finetune": {"distill": {"enabled": True}, "max_epochs": 2},
        "evaluate": {"bootstrap_samples": 100}})
    return root


def make_tiny_bert(folder: Path, words: list[str]) -> Path:
    """A 2-layer, hidden-16 BertModel + fast WordPiece tokenizer over `words` (no hub)."""
    import torch

    from builders.teacher_model import tiny_bert  # tests/ is on sys.path (see make_smoke_project)

    torch.manual_seed(0)  # the same tiny teacher every smoke run
    return tiny_bert(folder, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words)))
