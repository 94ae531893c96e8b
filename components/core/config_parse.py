"""Generic, strict dict -> frozen dataclass parsing.

Rules, applied recursively:
- an unknown key is an error naming its full path and the allowed keys;
- each value must match the field's annotation (int, float, bool, str,
  Literal[...], tuple[T, ...], nested dataclass); ints are accepted for
  floats, bools are never accepted for numbers;
- numeric bounds come from field metadata: `ge`, `gt`, `le`, `lt`.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Opt:
    ...     lr: float = field(default=1e-3, metadata={"gt": 0})
    >>> parse_dataclass(Opt, {"lr": 0.01}, "pretrain")
    Opt(lr=0.01)
    >>> try:
    ...     parse_dataclass(Opt, {"lr": -1}, "pretrain")
    ... except ConfigError as e:
    ...     print(e)
    pretrain.lr: expected a float > 0, got -1
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin

import yaml

from components.core.errors import ConfigError

_BOUNDS = (("gt", ">", lambda v, b: v > b), ("ge", ">=", lambda v, b: v >= b),
           ("lt", "<", lambda v, b: v < b), ("le", "<=", lambda v, b: v <= b))


def _describe(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    """Human description of an expected value, e.g. 'a float in (0, 1]'."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0], {})}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    name = {int: "an integer", float: "a float", bool: "true or false", str: "a string"}.get(tp, str(tp))
    bounds = [f"{sym} {meta[key]}" for key, sym, _ in _BOUNDS if key in meta]
    return name + (" " + " and ".join(bounds) if bounds else "")


def _coerce(tp: Any, value: Any, path: str, meta: typing.Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path, meta)

    given = value

    def bad() -> ConfigError:
        return ConfigError(f"{path}: expected {_describe(tp, meta)}, got {given!r}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return parse_dataclass(tp, value, path)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices and not isinstance(value, bool) and str(value) in choices:
            value = str(value)  # `precision: 32` means the choice "32"
        if value not in choices:
            raise bad()
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        inner = get_args(tp)[0]
        return tuple(_coerce(inner, v, f"{path}[{i}]", {}) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif tp is float:
        if isinstance(value, str):  # PyYAML reads `5e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise bad() from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    for key, _sym, ok in _BOUNDS:
        if key in meta and not ok(value, meta[key]):
            raise bad()
    return value


def parse_dataclass(cls: type, raw: dict, path: str = "") -> Any:
    """Build `cls` from `raw`, strictly. `path` prefixes error key paths."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{where}: unknown key (expected one of: {', '.join(fields)})")
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}" if path else name, f.metadata)
    return cls(**kwargs)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `section.key=value` override to `raw` in place.

    The value is parsed as YAML, so `--set pretrain.lr=1e-3` gives a float and
    `--set model.family=lstm` a string.

        >>> d = {"pretrain": {"lr": 1.0}}; apply_override(d, "pretrain.lr=0.5"); d
        {'pretrain': {'lr': 0.5}}
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected section.key=value")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment}: expected section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment}: {part} is not a section")
        node = child
    node[parts[-1]] = value
