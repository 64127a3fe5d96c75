"""Feature-family versions and feature services as committed files: the registry from git.

Why files in git and not a per-machine history: the Feast registry must be the same wherever
`feast apply` runs (a fresh clone, CI, the machine that ran `finfeast select`), and a definition
change must be reviewed like code. So the registry's inputs are two kinds of committed files next
to the Feast definitions:

- `feature_repo/versions.yaml`: per family `{version, code_hash}`. `code_hash` is
  `transforms.catalog.FamilySpec.code_hash` (source of the family's module, the shared kernel
  primitives, the feature specs). `feature_repo/feature_views.py` tags each `daily_<family>` view
  with that version and hash, so `feast plan` shows a definition change as a tag diff.
  `tests/transforms/test_versioning.py` fails when a family's current code hash differs from the
  committed one: bump with `finfeast versions bump <family>` (next version, new hash) and commit
  the file with the code. Rollback = `git revert` of that commit: code and version go back
  together, and the deterministic build reproduces the old tables and training sets.
- `feature_repo/services/price_model_v<n>.yaml`: a feature service written once by
  `finfeast select` (name, features, description, tags with its scores and the data it was
  selected on), loaded by `feature_repo/feature_services.py`. Versions are immutable.

Why our own family versions rather than only Feast's alpha `FeatureView(version=...)`: Feast bumps a
view's version when its *schema* changes; a changed definition (another smoothing, a fixed bug)
keeps the schema and changes only the values.

The only per-deployment state left is `var/<profile>/feature_build.json`: which versions built
that deployment's tables (the build summary reports "v1 -> v2"). Nothing under `feature_repo/`
reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from finfeast.errors import FinfeastError

VERSIONS_FILE = "versions.yaml"
SERVICES_DIR = "services"
BUILD_RECORD = "feature_build.json"
REPO_DIR = Path(__file__).resolve().parents[1] / "feature_repo"

_VERSIONS_HEADER = """\
# Feature family versions: which definition of each family the daily_<family> views serve.
# Reviewed like code. `code_hash` is transforms.catalog.FAMILIES[<family>].code_hash; when a
# family's code changes, tests/transforms/test_versioning.py fails until you run
#   finfeast versions bump <family>
# (next version, new hash) and commit this file with the code. Rollback = git revert.
"""


# ---- family versions ----------------------------------------------------------------------------
def versions_path(repo_path: Path | None = None) -> Path:
    return Path(repo_path or REPO_DIR) / VERSIONS_FILE


def load_versions(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """{family: {"version": int, "code_hash": str}} from versions.yaml; {} when absent."""
    path = path or versions_path()
    if not path.exists():
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FinfeastError(f"family versions file {path} is not valid YAML: {exc}") from exc
    families = doc.get("families") or {}
    try:
        return {
            str(name): {"version": int(entry["version"]), "code_hash": str(entry["code_hash"])}
            for name, entry in families.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise FinfeastError(
            f"family versions file {path}: every family needs an integer version and a code_hash"
        ) from exc


def save_versions(path: Path, versions: Mapping[str, Mapping[str, Any]]) -> None:
    """Write versions.yaml (families in the given order, with the how-to-bump header)."""
    body = {
        "families": {
            name: {"version": int(v["version"]), "code_hash": str(v["code_hash"])}
            for name, v in versions.items()
        }
    }
    path.write_text(_VERSIONS_HEADER + yaml.safe_dump(body, sort_keys=False))


def bump_hint(names: Iterable[str]) -> str:
    return (
        f"bump with `finfeast versions bump {' '.join(names)}` and commit "
        "feature_repo/versions.yaml with the code; to roll back instead, git revert the code change"
    )


def check_versions(
    committed: Mapping[str, Mapping[str, Any]],
    families: Iterable[Any],
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Problems (empty = consistent) between the committed versions and the catalog's code.

    `families` are FamilySpec-like (`name`, `code_hash`). `previous` is an earlier committed
    versions file (e.g. from git): a family whose hash changed since then under the *same* version
    number is a definition change without a bump (a lower number is a rollback, allowed).
    """
    problems, stale = [], []
    names = []
    for fam in families:
        names.append(fam.name)
        entry = committed.get(fam.name)
        if entry is None:
            problems.append(f"family {fam.name!r} is not in versions.yaml")
            stale.append(fam.name)
        elif entry["code_hash"] != fam.code_hash:
            problems.append(
                f"family {fam.name!r} changed: code hash {fam.code_hash} != committed "
                f"{entry['code_hash']} (v{entry['version']})"
            )
            stale.append(fam.name)
    for name in sorted(set(committed) - set(names)):
        problems.append(f"versions.yaml names family {name!r}, which the catalog does not have")
    for name, entry in committed.items():
        before = (previous or {}).get(name)
        if (
            before
            and before["code_hash"] != entry["code_hash"]
            and before["version"] == entry["version"]
        ):
            problems.append(
                f"family {name!r}: code hash changed ({before['code_hash']} -> "
                f"{entry['code_hash']}) but the version stayed v{entry['version']}"
            )
            stale.append(name)
    if stale:
        problems.append(bump_hint(dict.fromkeys(stale)))
    return problems


def bump(path: Path, names: Iterable[str], families: Mapping[str, Any]) -> dict[str, int]:
    """Give each named, changed family the next version and its current code hash.

    Returns {family: new version} of the families bumped (an unchanged hash is left alone).
    A family not yet in the file starts at its catalog-declared version. Families keep catalog
    order in the file.
    """
    current = load_versions(path)
    changed = {}
    for name in names:
        if name not in families:
            raise FinfeastError(f"unknown feature family {name!r}: {sorted(families)}")
        fam = families[name]
        entry = current.get(name)
        if entry and entry["code_hash"] == fam.code_hash:
            continue  # unchanged definition: nothing to bump
        version = entry["version"] + 1 if entry else _declared_version(fam)
        current[name] = {"version": version, "code_hash": fam.code_hash}
        changed[name] = version
    order = [n for n in families if n in current] + [n for n in current if n not in families]
    save_versions(path, {n: current[n] for n in order})
    return changed


def _declared_version(family: Any) -> int:
    try:
        return max(1, int(str(getattr(family, "version", 1)).lower().lstrip("v")))
    except ValueError:
        return 1


# ---- per-deployment build record (var/, never read by feature_repo) ---------------------------
def history_path(profile_dir: Path) -> Path:
    """The deployment's build record (which family versions built its tables)."""
    return Path(profile_dir) / BUILD_RECORD


def active_versions(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """{family: {"version", "code_hash"}} of the deployment's last build ({} before the first)."""
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text()).get("families", {})
    except json.JSONDecodeError as exc:
        raise FinfeastError(f"feature build record {path} is corrupt: {exc}") from exc


def record_build(settings: Any, families: Iterable[Any]) -> dict[str, int]:
    """Record which committed versions built the deployment's tables; returns {family: version}.

    A family whose code differs from versions.yaml was built from an uncommitted definition: the
    build still runs (work in progress), a warning says how to bump, and the record keeps the
    actual hash with the committed version marked `unversioned`.
    """
    from loguru import logger

    families = list(families)
    committed = load_versions(versions_path(settings.repo_path))
    record, versions, stale = {}, {}, []
    for fam in families:
        entry = committed.get(fam.name)
        version = entry["version"] if entry else _declared_version(fam)
        matches = entry is not None and entry["code_hash"] == fam.code_hash
        record[fam.name] = {"version": version, "code_hash": fam.code_hash, "versioned": matches}
        versions[fam.name] = version
        if not matches:
            stale.append(fam.name)
    if stale:
        logger.warning(
            "features: families {} differ from feature_repo/versions.yaml: {}",
            stale,
            bump_hint(stale),
        )
    path = history_path(settings.profile_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"families": record}, indent=2, sort_keys=True))
    tmp.replace(path)
    return versions


# ---- feature services written by `finfeast select` ---------------------------------------------
def services_dir(repo_path: Path | None = None) -> Path:
    return Path(repo_path or REPO_DIR) / SERVICES_DIR


def load_service_specs(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every committed service spec ({name, version, features, description, tags}), by file name."""
    directory = directory or services_dir()
    if not directory.is_dir():
        return []
    specs = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise FinfeastError(f"feature service file {path} is not valid YAML: {exc}") from exc
        missing = {"name", "version", "features", "description", "tags"} - set(spec or {})
        if missing:
            raise FinfeastError(f"feature service file {path} lacks {sorted(missing)}")
        if spec["name"] != path.stem:
            raise FinfeastError(f"feature service file {path} names {spec['name']!r}")
        spec["tags"] = {str(k): str(v) for k, v in (spec["tags"] or {}).items()}
        specs.append(spec)
    return specs


def next_service_version(directory: Path, prefix: str, features: list[str]) -> tuple[int, bool]:
    """(version, is_new): the latest version if it has exactly `features`, else latest + 1.

    Versions are never reused or rewritten, so a model trained on `<prefix>_v3` can always be
    served and retrained with exactly that feature list.
    """
    mine = [s for s in load_service_specs(directory) if s["name"].startswith(prefix + "_v")]
    if not mine:
        return 1, True
    latest = max(mine, key=lambda s: int(s["version"]))
    if list(latest["features"]) == list(features):
        return int(latest["version"]), False
    return int(latest["version"]) + 1, True


def save_service_spec(
    directory: Path,
    name: str,
    features: list[str],
    description: str,
    tags: Mapping[str, str],
    header: str = "",
) -> Path:
    """Write `<name>.yaml` once (a file to commit); refuses to overwrite an existing version."""
    path = Path(directory) / f"{name}.yaml"
    if path.exists():
        raise FinfeastError(
            f"feature service {name} already exists ({path}): versions are immutable"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "name": name,
        "version": int(name.rsplit("_v", 1)[1]),
        "description": description,
        "features": list(features),
        "tags": {str(k): str(v) for k, v in tags.items()},
    }
    text = yaml.safe_dump(body, sort_keys=False, width=100, allow_unicode=True)
    with open(path, "x") as fh:  # exclusive create: never overwrite, even in a race
        fh.write(header + text)
    return path
