"""What every rendered block shares: the run's files, their lineage, and markdown formatting.

The sources are only files a run or a benchmark wrote: reports/*.json (the pipeline's)
and reports/benchmarks/*.json (`benchmarks/*.py --json PATH`). A missing file is not an
error: the block says which command measures it. A file that is not JSON is an error that
names it.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

WIDTH = 110  # rendered prose lines; tables cannot wrap
_BLOCK_START = re.compile(r"^([-+*>#|]|\d+[.)])(\s|$)")  # would start a list, quote, heading or table


class RenderError(Exception):
    """A source or a page the renderer cannot use; the message names the file."""


class Sources:
    """The JSON files under a project root, read once each."""

    def __init__(self, root: Path, reports: str = "reports"):
        self.root = Path(root)
        self.reports = reports  # the folder of the run's reports, relative to the root
        self._cache: dict[str, dict | None] = {}

    def run_at(self, reports: str) -> "Sources":
        """The same project, with another run's reports (a folder like reports/domains/NAME)."""
        return Sources(self.root, reports)

    def json(self, rel: str) -> dict | None:
        """The parsed file at `rel` (a path relative to the root), None when it does not exist."""
        if rel not in self._cache:
            path = self.root / rel
            if not path.is_file():
                self._cache[rel] = None
            else:
                try:
                    self._cache[rel] = json.loads(path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError) as e:
                    raise RenderError(f"{rel}: not valid JSON ({e})") from None
        return self._cache[rel]

    def report(self, name: str) -> dict | None:
        return self.json(f"{self.reports}/{name}.json")

    def bench(self, name: str) -> dict | None:
        return self.json(f"reports/benchmarks/{name}.json")

    def benches(self, prefix: str) -> list[tuple[str, dict]]:
        """(rel path, data) of every reports/benchmarks/<prefix>*.json, sorted by name."""
        folder = self.root / "reports" / "benchmarks"
        rels = sorted(f"reports/benchmarks/{p.name}" for p in folder.glob(f"{prefix}*.json")) if folder.is_dir() else []
        return [(rel, self.json(rel)) for rel in rels]

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()


# --------------------------------------------------------------------------- lineage


def run_lineage(src: Sources) -> tuple[dict | None, str]:
    """The lineage of the committed pipeline run: (block, the file it came from).

    reports/metrics.json is byte-reproducible and carries no date, so the run's lineage comes
    from the timing reports evaluate writes next to it (frontier.json, else speed.json). A run
    from before those blocks existed still has the register stage's tags: commit, dirty flag,
    CPU flags, threads and torch, but no date or CPU model."""
    for name in ("frontier", "speed"):
        data = src.report(name)
        if data and isinstance(data.get("lineage"), dict):
            return data["lineage"], f"reports/{name}.json"
    tags = (src.report("register") or {}).get("tags") or {}
    if tags.get("encoderflow.git_sha"):
        threads = tags.get("encoderflow.torch_threads")
        return {"git_commit": tags["encoderflow.git_sha"],
                "git_dirty": tags.get("encoderflow.git_dirty") == "true",
                "date": None, "cpu": None,
                "bf16": "avx512_bf16" in tags.get("encoderflow.cpu_flags", "").split(),
                "threads": int(threads) if threads else None,
                "torch": tags.get("encoderflow.torch_version")}, "reports/register.json (tags)"
    return None, ""


def lineage_text(lin: dict | None, origin: str) -> str:
    """One sentence naming commit, date, CPU, bf16, threads and torch of a lineage block.

    >>> lineage_text({"git_commit": "0bf7721fc2c5", "git_dirty": False, "date": "2026-12-07T12:00:00+00:00",
    ...               "cpu": "AMD EPYC 9R14", "bf16": True, "threads": 2, "torch": "2.13.0"}, "x.json")
    'commit `0bf7721` · 2026-12-07 12:00 UTC · AMD EPYC 9R14 (bf16) · 2 threads · torch 2.13.0 (lineage: `x.json`)'
    """
    if not lin:
        return "commit, date and CPU not recorded"
    commit = lin.get("git_commit")
    parts = [f"commit `{commit[:7]}`" + (" with uncommitted changes" if lin.get("git_dirty") else "")
             if commit else "no commit recorded"]
    date = lin.get("date")
    parts.append(date[:16].replace("T", " ") + " UTC" if date else "date not recorded")
    cpu = lin.get("cpu") or "CPU model not recorded"
    parts.append(f"{cpu} ({'bf16' if lin.get('bf16') else 'no bf16'})")
    if lin.get("threads"):
        parts.append(f"{lin['threads']} thread{'s' if lin['threads'] != 1 else ''}")
    if lin.get("torch"):
        parts.append(f"torch {lin['torch']}")
    return " · ".join(parts) + (f" (lineage: `{origin}`)" if origin else "")


def wrap(text: str, prefix: str = "") -> str:
    """`text` as lines of at most WIDTH characters (a longer word stays whole), each after `prefix`;
    no line starts with what markdown would read as a list, quote, heading or table.

    >>> [len(line) for line in wrap("x" * 109 + " y z").splitlines()]  # wrapped at WIDTH
    [109, 3]
    >>> len(wrap("x" * 109 + " - z").splitlines())  # "- z" alone would start a list
    1
    """
    lines = textwrap.wrap(text, WIDTH - len(prefix), break_long_words=False, break_on_hyphens=False)
    out: list[str] = []
    for line in lines:
        if out and _BLOCK_START.match(line):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(prefix + line for line in out)


def source_line(files: list[str], lin: dict | None, origin: str) -> str:
    """The italic line under a table: which files it was rendered from and their lineage."""
    names = ", ".join(f"`{f}`" for f in files)
    return wrap(f"*From {names}: {lineage_text(lin, '' if origin in files else origin)}.*")


def not_measured(command: str, what: str = "") -> str:
    return wrap(f"**Not yet measured{': ' + what if what else ''}.** Run `{command}`, then "
                "`python docs/render.py`.", "> ")


# --------------------------------------------------------------------------- formatting


def table(head: list[str], rows: list[list]) -> str:
    """A markdown table; a pipe inside a cell is escaped so it cannot split the cell.

    >>> print(table(["a", "b"], [["x|y", 1]]))
    | a | b |
    |---|---|
    | x\\|y | 1 |
    """
    def cell(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows])


def num(x, fmt: str = "{:.3f}") -> str:
    """A number formatted, or an em dash for None / NaN.

    >>> num(0.79166), num(None), num(1234.5, "{:,.0f}")
    ('0.792', '—', '1,234')
    """
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    return fmt.format(x)


def ci(low, high) -> str:
    return "—" if low is None or high is None else f"{low:.3f}–{high:.3f}"


def image(src: Sources, rel: str, alt: str, to_root: str) -> str:
    """A markdown image of a file under the project root, linked from a page `to_root` below it
    ("../" from docs/, as GitHub resolves it; docs/hooks.py serves reports/ in the site);
    empty when the file does not exist."""
    return f"![{alt}]({to_root}{rel})" if src.exists(rel) else ""
