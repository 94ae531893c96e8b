"""MkDocs hooks (mkdocs.yml `hooks:`): the run's plots under reports/ become part of the site.

Pages link a plot as `../reports/plots/x.png`, the path that works on GitHub from docs/. The
site serves the same file at `reports/plots/x.png`, and each page's links are rewritten to
that place before MkDocs checks them, so `mkdocs build --strict` still fails on a plot that
does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

SERVED = ("*.png", "*.svg")


def on_files(files, config):
    root = Path(config.config_file_path).parent
    for pattern in SERVED:
        for path in sorted((root / "reports").rglob(pattern)):
            uri = path.relative_to(root).as_posix()
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    # from docs/a/b.md GitHub needs ../../reports/, the site (docs/ as its root) ../reports/
    depth = page.file.src_uri.count("/")
    return re.sub(r"\]\((?:\.\./){%d}reports/" % (depth + 1), "](" + "../" * depth + "reports/", markdown)
