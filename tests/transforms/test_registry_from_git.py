"""The registry comes from the committed files alone: two fresh `feast apply`s of two copies of
feature_repo/ (two clones, two registries) hold the same objects, per-deployment files under var/
change nothing, and `feast plan` of one clone against the other's registry has no changes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from finfeast.config import REPO_ROOT
from finfeast.store import apply_repo, get_store, plan_repo
from transforms.versioning import load_service_specs, load_versions


def _clone(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name / "feature_repo"
    shutil.copytree(
        REPO_ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


def _strip_times(message) -> None:
    """Clear every Timestamp inside a proto (creation/update times differ between applies)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.full_name == "google.protobuf.Timestamp":
            message.ClearField(field.name)
        elif hasattr(value, "ListFields"):  # a singular message
            _strip_times(value)
        else:  # repeated messages or a map
            items = value.values() if hasattr(value, "values") else value
            for item in items:
                if hasattr(item, "ListFields"):
                    _strip_times(item)


def _specs(settings) -> dict[tuple[str, str], bytes]:
    """Every registry object, serialized with its timestamps cleared and the clone's directory
    replaced by a placeholder: Feast pickles on-demand UDFs with dill, whose code objects carry
    the absolute path of the file they were imported from (the same length in both clones here,
    so the pickles' length prefixes agree too)."""
    clone = str(settings.repo_path.parent).encode()
    store = get_store(settings, fresh=True)
    objects = {
        "entity": store.list_entities(),
        "feature_view": store.list_feature_views(),
        "on_demand_feature_view": store.list_on_demand_feature_views(),
        "stream_feature_view": store.list_stream_feature_views(),
        "feature_service": store.list_feature_services(),
        "data_source": store.list_data_sources(),
    }
    out = {}
    for kind, items in objects.items():
        for item in items:
            proto = item.to_proto()
            _strip_times(proto)
            body = proto.SerializeToString(deterministic=True)
            out[(kind, item.name)] = body.replace(clone, b"<clone>")
    assert len(out) > 20 and any(kind == "feature_service" for kind, _ in out)
    return out


@pytest.mark.slow
def test_two_fresh_applies_from_the_files_give_the_same_registry(
    settings_factory, tmp_path
) -> None:
    first = settings_factory("local", "registry_git", repo_path=_clone(tmp_path, "clone_a"))
    second = dataclasses.replace(first, repo_path=_clone(tmp_path, "clone_b"))
    apply_repo(first)
    specs_a = _specs(first)
    registry = first.registry_path
    registry_a = registry.with_name("registry_a.db")
    registry.rename(registry_a)

    # the old design's per-deployment files: a fresh apply must not read them
    services = first.profile_dir / "feature_services"
    services.mkdir(parents=True, exist_ok=True)
    (services / "price_model_v9.json").write_text(
        json.dumps(
            {
                "name": "price_model_v9",
                "version": 9,
                "features": ["ret_1"],
                "description": "stale",
                "tags": {},
            }
        )
    )
    (first.profile_dir / "feature_versions.json").write_text(
        json.dumps(
            {"active": {"returns": 7}, "families": {"returns": [{"version": 7, "code_hash": "x"}]}}
        )
    )
    apply_repo(second)  # a new registry file from the second clone
    specs_b = _specs(second)
    assert set(specs_a) == set(specs_b)
    differing = [key for key in specs_a if specs_a[key] != specs_b[key]]
    assert not differing, differing

    # what the committed files say is what the registry holds
    names = {name for kind, name in specs_a if kind == "feature_service"}
    shipped = {s["name"] for s in load_service_specs(REPO_ROOT / "feature_repo" / "services")}
    assert "price_model_v1" in shipped and shipped <= names and "price_model_v9" not in names
    store = get_store(second, fresh=True)
    committed = load_versions(REPO_ROOT / "feature_repo" / "versions.yaml")
    for family, entry in committed.items():
        tags = store.get_feature_view(f"daily_{family}").tags
        assert (tags["family_version"], tags["code_hash"]) == (
            str(entry["version"]),
            entry["code_hash"],
        )

    # `feast plan` of clone B against clone A's registry: nothing to change
    registry.unlink()
    registry_a.rename(registry)
    assert "No changes to registry" in plan_repo(second)
