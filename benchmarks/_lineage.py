"""Where and from what a benchmark's numbers came: the `lineage` block of its --json file.

    from benchmarks import _lineage
    _lineage.lineage()            # {"git_commit", "git_dirty", "date", "cpu", "bf16", "threads", "torch"}
    _lineage.lineage(threads=1)   # name the thread count when the script set it per measurement

The same keys as the `lineage` block of reports/frontier.json (the evaluate stage's), so
docs/render.py reads every results file the same way. git_commit / git_dirty come from
components/core/lineage.py (the tags every MLflow run carries): dirty means tracked code or
params differ from the commit; the pipeline's own outputs (reports/, dvc.lock) do not count.
Like every benchmark module it expects the repository root on sys.path; importing it
imports neither torch nor the project's stages.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("git_commit", "git_dirty", "date", "cpu", "bf16", "threads", "torch")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("AMD EPYC 9R14"), or platform's guess off Linux.

    >>> cpu_model("processor : 0\\nmodel name\\t: AMD EPYC 9R14\\nflags : avx2\\n")
    'AMD EPYC 9R14'
    """
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has native bf16 (avx512_bf16): where precision `auto` trains in bf16-mixed.

    >>> has_bf16("flags : fpu avx512f avx512_bf16\\n"), has_bf16("flags : fpu avx2\\n")
    (True, False)
    """
    from components.core.lineage import cpu_flags

    return "avx512_bf16" in cpu_flags(_cpuinfo() if cpuinfo is None else cpuinfo).split()


def torch_threads() -> int | None:
    """torch's intra-op threads now; None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    if "torch" in sys.modules:
        return sys.modules["torch"].__version__
    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def lineage(threads: int | None = None, root: Path = ROOT) -> dict:
    """The lineage block: code (commit, dirty), time (UTC, ISO 8601, seconds), machine (CPU model,
    bf16, torch threads unless `threads` names them, torch version)."""
    from components.core.lineage import git_dirty, git_sha

    sha = git_sha(root)
    return {"git_commit": sha or None,
            "git_dirty": git_dirty(root) if sha else None,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_model(),
            "bf16": has_bf16(),
            "threads": threads if threads is not None else torch_threads(),
            "torch": torch_version()}


if __name__ == "__main__":  # python benchmarks/_lineage.py: this machine's block
    import json

    sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
    print(json.dumps(lineage(), indent=1))
