"""`--set` overrides for DVC-driven runs: written into params.yaml.

DVC reads params.yaml itself (dvc.yaml `params:`), so an override that only
lived in memory would make the run disagree with dvc.lock and `dvc repro`.
`encoderflow run --set k=v` therefore validates the overrides strictly and
then writes them into params.yaml, keeping its comments and layout (ruamel
round-trip, as `dvc exp run -S` does). `git diff params.yaml` shows them;
dvc.lock records them. For a throwaway try, use `dvc exp run -S k=v` instead.
"""

from __future__ import annotations

import io
from pathlib import Path

from components.core.atomic import write_text
from components.core.config_parse import apply_override
from components.core.errors import ConfigError


def write_overrides(path: str | Path, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Apply `section.key=value` items to the YAML file at `path`, in place.

    The caller validates first (components.core.config.load_params with the same
    overrides), so a bad override never touches the file. Returns
    `overrides` when the file changed, [] when it already had those values.
    """
    from ruamel.yaml import YAML

    path = Path(path)
    yaml = YAML()  # round-trip: comments, key order and flow lists survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    text = path.read_text(encoding="utf-8")
    doc = yaml.load(text)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    for item in overrides:
        apply_override(doc, item)
    out = io.StringIO()
    yaml.dump(doc, out)
    if out.getvalue() == text:
        return []
    write_text(path, out.getvalue())
    return list(overrides)
