"""Feature-family versions: which definition (code hash) produced the deployed feature tables.

Why our own history rather than only Feast's alpha `FeatureView(version=...)`: Feast bumps a view's
version when its *schema* changes, but a changed feature definition (another smoothing, a fixed
bug) keeps the schema and changes only the values. Each catalog family carries a `code_hash` of its
defining code; this module keeps, per deployment (workdir/profile), the history

    family -> [{version: 1, code_hash: ...}, {version: 2, code_hash: ...}, ...]

and on every build makes the version of the current hash active: a new hash gets the next number,
a hash seen before gets its old number back (that is a rollback: revert the code, rebuild, apply).
`feature_repo/feature_views.py` tags each `daily_<family>` view with the active version and hash,
so `feast plan` shows a definition change as a diff of the view's tags before it is applied, and
the registry records which definition served a training set. Because the build is deterministic,
rebuilding with the rolled-back code reproduces the old table, and hence old training sets, exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finfeast.config import Settings
from finfeast.errors import FinfeastError

HISTORY_FILE = "feature_versions.json"


def history_path(profile_dir: Path) -> Path:
    return Path(profile_dir) / HISTORY_FILE


def history_path_from_env() -> Path | None:
    """The history file of the deployment described by FINFEAST_* (for feature_repo imports)."""
    workdir, profile = os.environ.get("FINFEAST_WORKDIR"), os.environ.get("FINFEAST_PROFILE")
    if not workdir:
        return None
    return history_path(Path(workdir) / (profile or "local"))


def load_history(path: Path | None) -> dict[str, Any]:
    """{"families": {name: [entries]}, "active": {name: version}}; empty when absent."""
    if path is None or not path.exists():
        return {"families": {}, "active": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FinfeastError(f"feature version history {path} is corrupt: {exc}") from exc


def _save(path: Path, history: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history, indent=2, sort_keys=True))
    tmp.replace(path)


def _declared_version(family: Any) -> int:
    """The catalog's own version number of a family (1, "1" or "v1"); 1 when unparseable."""
    try:
        return max(1, int(str(getattr(family, "version", 1)).lower().lstrip("v")))
    except ValueError:
        return 1


def resolve_versions(history: dict[str, Any], families: Iterable[Any]) -> dict[str, int]:
    """Activate, per family, the version of its current code hash (new hash -> next number).

    Mutates and returns the active mapping of `history`; families are FamilySpec-like objects
    with `name`, `code_hash` and `features` (for the record).
    """
    now = datetime.now(UTC).isoformat(timespec="seconds")
    active: dict[str, int] = history.setdefault("active", {})
    known = history.setdefault("families", {})
    for fam in families:
        entries = known.setdefault(fam.name, [])
        match = next((e for e in entries if e["code_hash"] == fam.code_hash), None)
        if match is None:
            match = {
                # the catalog's declared version is a floor (a manual bump is honoured)
                "version": max(
                    max((e["version"] for e in entries), default=0) + 1,
                    _declared_version(fam),
                ),
                "code_hash": fam.code_hash,
                "features": [f.name for f in fam.features],
                "first_built": now,
            }
            entries.append(match)
        match["last_built"] = now
        active[fam.name] = int(match["version"])
    return dict(active)


def record_build(settings: Settings, families: Iterable[Any]) -> dict[str, int]:
    """Record the families just built in the deployment's history; returns active versions."""
    path = history_path(settings.profile_dir)
    history = load_history(path)
    versions = resolve_versions(history, families)
    _save(path, history)
    return versions


def active_versions(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """{family: {"version": n, "code_hash": h}} of the last build (from the env's deployment)."""
    history = load_history(path if path is not None else history_path_from_env())
    out = {}
    for name, version in history.get("active", {}).items():
        entry = next(e for e in history["families"][name] if e["version"] == version)
        out[name] = {"version": version, "code_hash": entry["code_hash"]}
    return out


# ---- versioned feature services (written by `finfeast select`, loaded by feature_repo) ----------
SERVICES_DIR = "feature_services"


def services_dir_from_env() -> Path | None:
    workdir, profile = os.environ.get("FINFEAST_WORKDIR"), os.environ.get("FINFEAST_PROFILE")
    return Path(workdir) / (profile or "local") / SERVICES_DIR if workdir else None


def saved_service_specs(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every saved service spec ({name, version, features, description, tags}), by name."""
    directory = directory if directory is not None else services_dir_from_env()
    if directory is None or not directory.is_dir():
        return []
    specs = []
    for path in sorted(directory.glob("*.json")):
        try:
            specs.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise FinfeastError(f"feature service spec {path} is corrupt: {exc}") from exc
    return specs


def next_service_version(directory: Path, prefix: str, features: list[str]) -> tuple[int, bool]:
    """(version, is_new): the latest version if it has exactly `features`, else latest + 1.

    Versions are never reused or rewritten, so a model trained on `<prefix>_v3` can always be
    served and retrained with exactly that feature list.
    """
    mine = [s for s in saved_service_specs(directory) if s["name"].startswith(prefix + "_v")]
    if not mine:
        return 1, True
    latest = max(mine, key=lambda s: s["version"])
    if list(latest["features"]) == list(features):
        return int(latest["version"]), False
    return int(latest["version"]) + 1, True


def save_service_spec(
    directory: Path, name: str, features: list[str], description: str, tags: dict[str, str]
) -> Path:
    """Write a service spec once; refuses to overwrite an existing version."""
    path = directory / f"{name}.json"
    if path.exists():
        raise FinfeastError(f"feature service {name} already exists: versions are immutable")
    version = int(name.rsplit("_v", 1)[1])
    _save(
        path,
        {
            "name": name,
            "version": version,
            "features": features,
            "description": description,
            "tags": tags,
        },
    )
    return path
