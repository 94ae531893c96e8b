"""Lineage of a run: which code, which pipeline lock, which data.

Every MLflow run (the pipeline parent and each stage child) and every
registered model version carries these tags, so any result points back to
what produced it:

    encoderflow.git_sha        commit of the code ("" outside a git repo)
    encoderflow.git_dirty      "true" when tracked code/params differ from that commit
                               (dvc.lock and reports are left out: runs rewrite them)
    encoderflow.dvc_lock_md5   md5 of dvc.lock ("" when there is none)
    encoderflow.data_md5       DVC's hash of data/prepared (the same string as the
                               `md5:` of that out in dvc.lock, e.g. "3f0c...e1.dir")
    encoderflow.flow_run_id    the Prefect flow run (env ENCODERFLOW_FLOW_RUN_ID)

and what bit-exactness of the numbers depends on (same code, data and params give
byte-identical reports only where these match too):

    encoderflow.torch_version  e.g. "2.13.0+cpu"
    encoderflow.torch_threads  torch's intra-op threads (the reduction order of kernels)
    encoderflow.cpu_capability the kernel set torch dispatches to ("AVX512", "AVX2", ...)
    encoderflow.cpu_flags      the CPU's ISA flags that change kernels (avx512_bf16, amx_bf16, ...)

To reproduce a run: `git checkout <git_sha>`, check that dvc.lock has
`dvc_lock_md5`, `dvc pull`, `dvc repro`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

FLOW_RUN_ENV = "ENCODERFLOW_FLOW_RUN_ID"
PREFIX = "encoderflow."
# Files DVC never hashes inside a folder (see .dvcignore); keep in step with it.
_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = (".pyc",)
_SKIP_NAMES = {".DS_Store"}


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_sha(root: str | Path = ".") -> str:
    """The HEAD commit, or "" outside a git repo / before the first commit."""
    out = _git(Path(root), "rev-parse", "HEAD")
    return out.strip() if out else ""


def _pipeline_outputs(root: Path) -> tuple[str, ...]:
    """What runs write: dvc.lock and every stage's outs, metrics and plots, as
    dvc.yaml (rendered from the stage table) declares them."""
    import yaml

    outputs = ["dvc.lock"]
    dvc_yaml = root / "dvc.yaml"
    doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) if dvc_yaml.is_file() else None
    for stage in ((doc or {}).get("stages") or {}).values():
        for key in ("outs", "metrics", "plots"):
            outputs += [next(iter(e)) if isinstance(e, dict) else e for e in stage.get(key, ())]
    return tuple(outputs)


def git_dirty(root: str | Path = ".") -> bool:
    """True when a tracked file differs from HEAD, not counting what the
    pipeline itself writes (dvc.lock, reports/*.json, plots): code or params.

    >>> "reports/metrics.json" in _pipeline_outputs(Path(__file__).resolve().parents[2])
    True
    """
    out = _git(Path(root), "status", "--porcelain", "--untracked-files=no")
    if not out:
        return False
    # porcelain v1: "XY path" (rename: "XY old -> new")
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in out.splitlines() if line.strip()]
    outputs = _pipeline_outputs(Path(root))
    return any(not any(p == o or p.startswith(o.rstrip("/") + "/") for o in outputs) for p in paths)


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """md5 hex digest of a file's bytes (what DVC 3 records with `hash: md5`)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def dir_md5(path: str | Path) -> str:
    """DVC 3's hash of a folder: md5 of its sorted JSON file listing + ".dir".

    The listing is `[{"md5": <file md5>, "relpath": "a/b.txt"}, ...]` sorted by
    relpath and dumped with sorted keys (dvc_data.hashfile.tree.Tree.as_bytes),
    so the result equals the `md5:` DVC writes for that folder in dvc.lock.
    Returns "" when the folder does not exist.
    """
    path = Path(path)
    if not path.is_dir():
        return ""
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            if name in _SKIP_NAMES or name.endswith(_SKIP_SUFFIXES):
                continue
            full = Path(dirpath) / name
            entries.append({"md5": file_md5(full), "relpath": full.relative_to(path).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def lock_md5(root: str | Path = ".") -> str:
    """md5 of dvc.lock, or "" when the project has none yet."""
    lock = Path(root) / "dvc.lock"
    return file_md5(lock) if lock.is_file() else ""


def code_tags(root: str | Path = ".") -> dict[str, str]:
    """The cheap tags (no data hashing): code, lock and Prefect flow run."""
    root = Path(root)
    sha = git_sha(root)
    tags = {
        PREFIX + "git_sha": sha,
        PREFIX + "git_dirty": str(git_dirty(root)).lower() if sha else "",
        PREFIX + "dvc_lock_md5": lock_md5(root),
        PREFIX + "flow_run_id": os.environ.get(FLOW_RUN_ENV, ""),
        **platform_tags(),
    }
    if sha:
        tags["mlflow.source.git.commit"] = sha  # shown by the MLflow UI
    return tags


# ISA extensions that select different torch/oneDNN kernels (and so rounding) on x86.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
              "amx_tile")


def _cpuinfo() -> str:
    """/proc/cpuinfo ("" off Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> str:
    """The kernel-relevant ISA flags of this CPU, space-separated ("" off Linux).

    >>> cpu_flags("flags : fpu avx2 fma avx512f\\n")
    'avx2 fma avx512f'
    """
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    have = set(line.partition(":")[2].split())
    return " ".join(f for f in _ISA_FLAGS if f in have)


def platform_tags() -> dict[str, str]:
    """What bit-exact reproduction depends on besides code, data and params."""
    import torch

    return {PREFIX + "torch_version": torch.__version__,
            PREFIX + "torch_threads": str(torch.get_num_threads()),
            PREFIX + "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            PREFIX + "cpu_flags": cpu_flags()}


def data_tags(root: str | Path = ".") -> dict[str, str]:
    """The data hash tag (reads every file of data/prepared once)."""
    from components.core.paths import Paths

    return {PREFIX + "data_md5": dir_md5(Paths.at(root).prepared)}


def tags(root: str | Path = ".") -> dict[str, str]:
    """All lineage tags for a run started now in project `root`."""
    return {**code_tags(root), **platform_tags(), **data_tags(root)}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("" when unknown).

    >>> cpu_model("processor : 0\\nmodel name : AMD EPYC 9R14 96-Core Processor\\n")
    'AMD EPYC 9R14 96-Core Processor'
    """
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
    return line.partition(":")[2].strip()


def run_facts(root: str | Path = ".") -> dict:
    """Where a measurement came from, for files that keep timings (frontier.json, benchmark
    JSON; never metrics.json, which must stay byte-reproducible): commit, date, CPU, whether
    it has avx512_bf16 (precision "auto" means bf16 only then), torch threads and version."""
    from datetime import datetime, timezone

    import torch

    return {"git_commit": git_sha(root), "git_dirty": git_dirty(root),
            "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "cpu": cpu_model(), "bf16": "avx512_bf16" in cpu_flags().split(),
            "threads": torch.get_num_threads(), "torch": torch.__version__.split("+")[0]}
