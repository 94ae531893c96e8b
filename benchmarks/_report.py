"""What a benchmark prints and, with --json PATH, writes: the file docs/render.py renders.

    from benchmarks import _report
    _report.add_json_option(ap)                      # --json PATH
    out = _report.Report("scaling")
    out.table("tokens/s by batch and sequence length", ["threads", "batch", "seq 64"], rows)  # prints + keeps
    out.results["cells"] = [...]                     # the raw numbers, JSON-serialisable
    out.write(args.json)                             # nothing without --json; lineage added here

The file (docs/development.md, "Benchmarks", describes it for readers):

    {"benchmark": "scaling",
     "command": "python benchmarks/scaling.py --json reports/benchmarks/scaling.json",
     "lineage": {"git_commit", "git_dirty", "date", "cpu", "bf16", "threads", "torch"},
     "results": {...},                                # numbers, as measured
     "tables": [{"title": "...", "columns": [...], "rows": [[...], ...]}]}   # as printed

The tables are the script's own printed tables, cell for cell, so the docs show what the
run printed and no number is typed by hand.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from benchmarks import _lineage

ROOT = _lineage.ROOT


def md_table(head: list[str], rows: list[list]) -> str:
    """A markdown table.

    >>> print(md_table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(str(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def add_json_option(ap) -> None:
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the numbers, the printed tables and their lineage (commit, date, CPU, "
                         "bf16, threads, torch) to PATH; reports/benchmarks/<script>.json is what the docs "
                         "render (python docs/render.py)")


def command() -> str:
    """This process's command line, the script named from the repository root when it is inside it."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else sys.argv[0]
    return shlex.join(["python", name, *sys.argv[1:]])


class Report:
    """The tables a script prints, kept for its --json file, and its raw results."""

    def __init__(self, benchmark: str):
        self.benchmark = benchmark
        self.results: dict = {}
        self.tables: list[dict] = []
        self.lineage_root: Path = ROOT  # whose commit the lineage names
        self.lineage_code: dict = {}  # git_commit / git_dirty of the code measured, when not lineage_root's HEAD

    def table(self, title: str, columns: list[str], rows: list[list], show_title: bool = True) -> str:
        """Print `title` (when show_title) and the table; keep both. Cells are kept as printed (str)."""
        cells = [[str(c) for c in r] for r in rows]
        self.tables.append({"title": title, "columns": [str(c) for c in columns], "rows": cells})
        text = md_table(columns, cells)
        print(f"\n{title}\n\n{text}" if show_title else text, flush=True)
        return text

    def payload(self, threads: int | None = None) -> dict:
        return {"benchmark": self.benchmark, "command": command(),
                "lineage": {**_lineage.lineage(threads=threads, root=self.lineage_root), **self.lineage_code},
                "results": self.results, "tables": self.tables}

    def write(self, path: Path | None, threads: int | None = None) -> dict | None:
        """Write the file atomically (a temp file, then a rename); None without a path."""
        if path is None:
            return None
        data = self.payload(threads)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        print(f"json: {path}", flush=True)
        return data
