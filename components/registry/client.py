"""The model registry side: aliases, promote / rollback, and the audit trail.

Aliases only (no stages): `@champion` is what serving loads, `@challenger` a
registered version that did not beat it. The registered model's tag
`previous_champion.<V>` remembers which champion version V replaced, so
`rollback` can return to it (rollback records the version it replaced, so a
second rollback undoes the first). The tag `previous_champion` mirrors it for
the current champion, for people reading the model page.

Audit trail: one registered-model tag per alias change, key
`audit.<UTC time, µs>` (sorts in time order), value a JSON record:
    {"action": "gate|promote|rollback|external", "by": "gate|cli|ui/external",
     "alias": "champion", "version": "3", "from": "2", "status": "pending|done|aborted",
     "aliases": {...aliases after the change...}, "time": "...", "note": "..."}
It lives with the model (visible on its page in the MLflow UI) and survives
without any extra run.

Crash safety: a change is journalled, then applied, in this order:
  1. audit record status "pending" (nothing changed yet)
  2. champion only: tag previous_champion.<new> = the champion it replaces
     (inert until the alias moves: rollback reads the tag of the CURRENT champion)
  3. set the alias: the single commit point. Before it the old state stands;
     from it on, the new champion and its rollback target are both in place.
  4. champion only: mirror tag previous_champion; drop @challenger if it
     pointed at the new champion
  5. audit record status "done"
If a step raises, `set_alias` runs `recover` at once (best effort) and
re-raises; every registry command also runs it first, which covers a killed
process. `recover` rolls a pending record forward (steps 4-5, idempotent)
when its alias already points at its version, else marks it "aborted". So an
interrupted change ends in the old state or the complete new one.
Changes made outside encoderflow (MLflow UI, API) are found by comparing the
current aliases with the last done record and recorded as "ui/external".

Two registered models per project: `register.model_name` (the student, what the
pipeline trains) and `teacher_name(model_name)` = "<model_name>-teacher" (the
fine-tuned teacher it distils from). Each has its own aliases, gate and trail.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from components.core.errors import EncoderflowError, first_line

CHAMPION, CHALLENGER = "champion", "challenger"
TEACHER_SUFFIX = "-teacher"
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
    text = first_line(err)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connect(project, root: Path | None = None):
    """An MlflowClient on the project's store, checked to answer (one-line error if not)."""
    for key, value in FAST_FAIL_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow import MlflowClient

    from components.core.tracking import tracking_uri

    uri = tracking_uri(project, root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_registered_models(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means "cannot use the registry"
        raise EncoderflowError(f"MLflow registry at {uri} is unreachable ({_short(e)})") from None
    return client


def teacher_name(model_name: str) -> str:
    """The registered model that holds the teacher of `model_name`.

    >>> teacher_name("encoderflow")
    'encoderflow-teacher'
    """
    return model_name + TEACHER_SUFFIX


def latest_version(client, name: str):
    """The newest ModelVersion of `name` (highest version number), or None."""
    if get_model(client, name) is None:
        return None
    found = client.search_model_versions(f"name='{name}'")
    return max(found, key=lambda mv: int(mv.version), default=None)


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


def target_key(version: str) -> str:
    """The tag naming the champion that `version` replaced.

    >>> target_key("3")
    'previous_champion.3'
    """
    return f"{PREVIOUS}.{version}"


def rollback_target(model) -> str | None:
    """The version `rollback` returns to: the one the current champion replaced."""
    tags = model.tags or {}
    current = aliases(model).get(CHAMPION)
    if current and target_key(current) in tags:
        return tags[target_key(current)] or None
    if any(k.startswith(PREVIOUS + ".") for k in tags):
        return None  # the current champion replaced nobody
    return tags.get(PREVIOUS)  # a model promoted before per-version tags existed


def _finish(client, name: str, rec: dict) -> None:
    """Step 4 of the protocol (idempotent), given that the alias is already set."""
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
        client.set_registered_model_tag(name, target_key(new_champ), old_champ)
        client.set_registered_model_tag(name, PREVIOUS, old_champ)
    elif new_champ and not old_champ and target_key(new_champ) in (model.tags or {}):
        client.delete_registered_model_tag(name, target_key(new_champ))  # replaced nobody
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
    try:
        if alias == CHAMPION:  # 2. the rollback target of the new champion (inert until 3)
            if old:
                client.set_registered_model_tag(name, target_key(version), old)
            elif target_key(version) in (model.tags or {}):  # stale, from an earlier reign
                client.delete_registered_model_tag(name, target_key(version))
        client.set_registered_model_alias(name, alias, version)  # 3. commit
        _finish(client, name, rec)  # 4. mirror tag, challenger cleanup
        rec["status"] = "done"
        _write(client, name, key, rec)  # 5. done
    except Exception:
        try:  # roll forward if the alias moved, else mark aborted; a killed process
            recover(client, name)  # leaves this to the next registry command
        except Exception:  # noqa: BLE001 - the store may be down: keep the first error
            pass
        raise
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
    prev = rollback_target(model)
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
