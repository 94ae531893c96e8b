"""Render the numbers of the docs from the run's own files, so no number is typed by hand.

    python docs/render.py            # rewrite every rendered block in README.md and docs/**/*.md
    python docs/render.py --check    # exit 1 and name each page whose blocks are stale
    make docs-render                 # the same as the first

A page marks each generated part as a block; everything between the two markers is replaced:

    <!-- render:results -->
    ...generated...
    <!-- /render:results -->

Blocks read only files a run or a benchmark wrote: reports/*.json (the pipeline's) and
reports/benchmarks/*.json (`benchmarks/*.py --json PATH`). Each rendered table names the
commit, date and CPU it came from (their `lineage` block). A missing file renders as "not
yet measured" with the command that measures it. The blocks:

    results, speed, run, frontier         docs/render_results.py (the pipeline run)
    ingest, validate, tokenizer           docs/render_data.py (the data stages)
    bench:NAME, label_efficiency,         docs/render_bench.py (reports/benchmarks/NAME.json;
    quickstart                            cold-run time with and without bf16)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import render_bench
import render_data
import render_results
from render_io import RenderError, Sources

ROOT = Path(__file__).resolve().parents[1]
# A marker counts only alone at the start of a line, so prose can quote one in backticks.
OPEN = re.compile(r"^<!-- render:(?P<name>[\w:.-]+) -->$", re.M)
BLOCK = re.compile(r"^(?P<open><!-- render:(?P<name>[\w:.-]+) -->\n)(?P<body>.*?)"
                   r"^(?P<close><!-- /render:(?P=name) -->)$", re.S | re.M)


def block_function(name: str):
    fn = (render_results.BLOCKS.get(name) or render_results.domain_block(name) or render_data.BLOCKS.get(name)
          or render_bench.block(name))
    if fn is None:
        known = sorted([*render_results.BLOCKS, *render_data.BLOCKS, "bench:NAME", "domain:NAME", "label_efficiency",
                        "quickstart"])
        raise RenderError(f"unknown block '{name}' (known: {', '.join(known)})")
    return fn


def pages(root: Path) -> list[Path]:
    """README.md and every markdown page under docs/."""
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in found if p.is_file()]


def render_text(text: str, src: Sources, to_root: str, where: str) -> str:
    """`text` with every block's body rendered anew; an unknown or unclosed block is an error
    naming `where` and the line."""
    closed = {m.start("open") for m in BLOCK.finditer(text)}
    for m in OPEN.finditer(text):
        if m.start() not in closed:
            line = text.count("\n", 0, m.start()) + 1
            raise RenderError(f"{where}:{line}: block '{m['name']}' has no closing <!-- /render:{m['name']} -->"
                              " line")

    def one(m: re.Match) -> str:
        line = text.count("\n", 0, m.start()) + 1
        try:
            body = block_function(m["name"])(src, to_root).strip("\n")
        except RenderError as e:
            raise RenderError(f"{where}:{line}: {e}") from None
        return f"{m['open']}{body}\n{m['close']}"

    return BLOCK.sub(one, text)


def render(root: Path, check: bool) -> list[str]:
    """Render every page under `root`; returns the pages that changed (check: that would change).
    Every page renders before any is written, so an error leaves all of them as they were."""
    src = Sources(root)
    new = {}
    for page in pages(root):
        rel = page.relative_to(root).as_posix()
        old = page.read_text(encoding="utf-8")
        text = render_text(old, src, "../" * rel.count("/"), rel)
        if text != old:
            new[page] = text
    if not check:
        for page, text in new.items():
            page.write_text(text, encoding="utf-8")
    return [p.relative_to(root).as_posix() for p in new]


def main(argv: list[str] | None = None) -> int:
    lines = __doc__.splitlines()
    ap = argparse.ArgumentParser(prog="python docs/render.py", description=lines[0],
                                 epilog="\n".join(lines[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page is stale")
    ap.add_argument("--root", type=Path, default=ROOT, help="project root (default: this checkout)")
    args = ap.parse_args(argv)
    try:
        changed = render(args.root, args.check)
    except RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.check and changed:
        print(f"error: stale rendered blocks in {', '.join(changed)}; run `python docs/render.py`", file=sys.stderr)
        return 1
    verb = "up to date" if not changed else ("would change: " if args.check else "rendered: ") + ", ".join(changed)
    print(f"docs: {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
