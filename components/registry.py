"""The model registry side: aliases, promote / rollback, and the audit trail.

Aliases only (no stages): `@champion` is what serving loads, `@challenger` a
registered version that did not beat it. The registered model's tag
`previous_champion` remembers the champion before the current one, so
`rollback` can return to it (rollback sets it to the version it replaced, so
a second rollback undoes the first).

Audit trail: one registered-model tag per alias change, key
`audit.<UTC time, µs>` (sorts in time order), value a JSON record:
    {"action": "gate|promote|rollback|external", "by": "gate|cli|ui/external",
     "alias": "champion", "version": "3", "from": "2", "status": "pending|done|aborted",
     "aliases": {...aliases after the change...}, "time": "...", "note": "..."}
It lives with the model (visible on its page in the MLflow UI) and survives
without any extra run.

Crash safety: a change is journalled, then applied, in this order:
  1. audit record status "pending" (nothing changed yet)
  2. set the alias (serving switches here)
  3. champion only: tag previous_champion = the replaced champion;
     drop @challenger if it pointed at the new champion
  4. audit record status "done"
Every registry command first runs `recover`: a pending record whose alias
already points at its version is rolled forward (steps 3-4, idempotent);
otherwise it is marked "aborted". So any interrupted prefix ends consistent.
Changes made outside encoderflow (MLflow UI, API) are found by comparing the
current aliases with the last done record and recorded as "ui/external".
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from components.errors import EncoderflowError

CHAMPION, CHALLENGER = "champion", "challenger"
PREVIOUS = "previous_champion"
AUDIT = "audit."
# Fail fast (not minutes of retries) when a remote tracking server is down.
FAST_FAIL_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _short(err: BaseException, limit: int = 200) -> str:
    """The gist of an error: "[Errno 111] Connection refused" rather than a page of urllib3.

    >>> _short(Exception("API request failed ... Failed to establish a new connection: "
    ...                  "[Errno 111] Connection refused'))"))
    '[Errno 111] Connection refused'
    """
    import re

    text = str(err).strip()
    found = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out", text)
    if found:
        return found.group(0).strip()
    text = text.splitlines()[0] if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connect(project, root: Path | None = None):
    """An MlflowClient on the project's store, checked to answer (one-line error if not)."""
    for key, value in FAST_FAIL_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow import MlflowClient

    from components.tracking import tracking_uri

    uri = tracking_uri(project, root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_registered_models(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means "cannot use the registry"
        raise EncoderflowError(f"MLflow registry at {uri} is unreachable ({_short(e)})") from None
    return client


def get_model(client, name: str):
    """The registered model, or None if it does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _require_model(client, name: str):
    model = get_model(client, name)
    if model is None:
        raise EncoderflowError(f"registered model {name!r} not found (run the register stage first)")
    return model


def aliases(model) -> dict[str, str]:
    """alias -> version (as str: the store may hand back ints)."""
    return {k: str(v) for k, v in ((model.aliases if model is not None else None) or {}).items()}


def history(model) -> list[dict]:
    """Audit records, oldest first, each with its tag key under "key"."""
    items = sorted((k, v) for k, v in (model.tags or {}).items() if k.startswith(AUDIT))
    out = []
    for key, value in items:
        try:
            rec = json.loads(value)
        except json.JSONDecodeError:
            rec = {"status": "unreadable", "note": value[:80]}
        out.append({"key": key, **rec})
    return out


def _write(client, name: str, key: str, record: dict) -> None:
    client.set_registered_model_tag(name, key, json.dumps(record, sort_keys=True))


def _new_key(model) -> str:
    now = datetime.now(timezone.utc)
    key = AUDIT + now.strftime("%Y%m%dT%H%M%S.%fZ")
    while key in (model.tags or {}):  # same microsecond: keep keys unique and ordered
        key += "_"
    return key


def _finish(client, name: str, rec: dict) -> None:
    """Steps 3 of the protocol (idempotent), given that the alias is already set."""
    if rec["alias"] == CHAMPION:
        if rec.get("from"):
            client.set_registered_model_tag(name, PREVIOUS, rec["from"])
        if rec.get("drop_challenger"):
            model = client.get_registered_model(name)
            if aliases(model).get(CHALLENGER) == rec["version"]:
                client.delete_registered_model_alias(name, CHALLENGER)


def recover(client, name: str) -> int:
    """Complete or abort interrupted alias changes; returns how many were pending."""
    model = get_model(client, name)
    if model is None:
        return 0
    pending = [r for r in history(model) if r.get("status") == "pending"]
    for rec in pending:
        key = rec.pop("key")
        if aliases(model).get(rec["alias"]) == rec["version"]:
            _finish(client, name, rec)
            rec.update(status="done", note=(rec.get("note", "") + " (completed by recovery)").strip())
        else:
            rec.update(status="aborted", note=(rec.get("note", "") + " (interrupted before the alias "
                                               "moved)").strip())
        _write(client, name, key, rec)
    return len(pending)


def observe(client, name: str) -> list[dict]:
    """Record alias changes made outside encoderflow since the last done record."""
    model = get_model(client, name)
    if model is None:
        return []
    done = [r for r in history(model) if r.get("status") == "done"]
    before = done[-1].get("aliases", {}) if done else {}
    now = aliases(model)
    if now == before:
        return []
    changes = {a: [before.get(a), now.get(a)] for a in sorted(set(before) | set(now))
               if before.get(a) != now.get(a)}
    old_champ, new_champ = before.get(CHAMPION), now.get(CHAMPION)
    if old_champ and new_champ and old_champ != new_champ:
        client.set_registered_model_tag(name, PREVIOUS, old_champ)
    rec = {"action": "external", "by": "ui/external", "changes": changes, "aliases": now,
           "status": "done", "time": _iso(), "note": "alias change made outside encoderflow"}
    _write(client, name, _new_key(model), rec)
    return [rec]


def sync(client, name: str) -> None:
    """Run before every registry command: recover, then record external changes."""
    recover(client, name)
    observe(client, name)


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def set_alias(client, name: str, alias: str, version: str, *, action: str, by: str,
              note: str = "", numbers: dict | None = None) -> bool:
    """Move `alias` to `version` through the journalled protocol. False if already there."""
    version = str(version)
    model = client.get_registered_model(name)
    current = aliases(model)
    old = current.get(alias)
    if old == version:
        return False
    after = {**current, alias: version}
    drop = alias == CHAMPION and current.get(CHALLENGER) == version
    if drop:
        del after[CHALLENGER]
    rec = {"action": action, "by": by, "alias": alias, "version": version, "from": old,
           "aliases": after, "drop_challenger": drop, "status": "pending", "time": _iso(),
           "note": note}
    if numbers:
        rec["numbers"] = numbers
    key = _new_key(model)
    _write(client, name, key, rec)  # 1. journal
    client.set_registered_model_alias(name, alias, version)  # 2. alias
    _finish(client, name, rec)  # 3. previous_champion, challenger cleanup
    rec["status"] = "done"
    _write(client, name, key, rec)  # 4. done
    return True


def _check_version(client, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise EncoderflowError(f"model {name!r} has no version {version!r}") from None


def promote(client, name: str, version: str, by: str = "cli") -> tuple[bool, str | None]:
    """Make `version` the champion; returns (changed, replaced champion or None)."""
    _require_model(client, name)
    sync(client, name)
    _check_version(client, name, version)
    old = aliases(client.get_registered_model(name)).get(CHAMPION)
    changed = set_alias(client, name, CHAMPION, str(version), action="promote", by=by)
    return changed, old


def rollback(client, name: str, by: str = "cli") -> tuple[str | None, str]:
    """Return @champion to previous_champion; returns (replaced, restored)."""
    model = _require_model(client, name)
    sync(client, name)
    model = client.get_registered_model(name)
    prev = (model.tags or {}).get(PREVIOUS)
    current = aliases(model).get(CHAMPION)
    if not prev or prev == current:
        raise EncoderflowError(f"model {name!r} has no previous champion to roll back to")
    _check_version(client, name, prev)
    set_alias(client, name, CHAMPION, prev, action="rollback", by=by)
    return current, prev


def versions(client, name: str) -> list[dict]:
    """Every version, newest first: version, aliases, created, run id, tags."""
    model = _require_model(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases(model).items():
        by_version.setdefault(version, []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{name}'"):
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc)
        rows.append({"version": str(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                     "created": created.strftime("%Y-%m-%d %H:%M"), "run_id": mv.run_id,
                     "tags": dict(mv.tags or {})})
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)
