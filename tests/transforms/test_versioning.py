"""Family versions are committed files checked against the code; definition change -> bump ->
`feast plan` diff -> apply -> rollback (revert) -> the same training set."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from featstore_inputs import daily_repo_copy, write_canonical_tables

from finfeast.config import REPO_ROOT
from finfeast.store import apply_repo, get_store, plan_repo
from transforms import catalog, context
from transforms.build import build_feature_tables
from transforms.training import build_training_set
from transforms.versioning import (
    active_versions,
    bump,
    check_versions,
    history_path,
    load_service_specs,
    load_versions,
    next_service_version,
    record_build,
    save_service_spec,
    versions_path,
)

FAMILY = context.FAMILY
VIEW = f"daily_{FAMILY}"
SERVICE_FEATURES = ["vix", "vix_chg_1", "ret_1", "beta_spx_60"]
VERSIONS = REPO_ROOT / "feature_repo" / "versions.yaml"


def _git_versions(rev: str) -> dict | None:
    """feature_repo/versions.yaml at a git revision (None outside a git checkout / no such rev)."""
    try:
        text = subprocess.run(
            ["git", "show", f"{rev}:feature_repo/versions.yaml"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    families = (yaml.safe_load(text) or {}).get("families") or {}
    return {
        k: {"version": int(v["version"]), "code_hash": v["code_hash"]} for k, v in families.items()
    }


def test_committed_versions_match_every_family_of_the_code() -> None:
    """The gate: a family whose code changed needs its version bumped in versions.yaml."""
    committed = load_versions(VERSIONS)
    assert committed, f"{VERSIONS} is missing or empty"
    problems = check_versions(committed, catalog.FAMILIES.values())
    assert not problems, "\n".join(problems)
    # and against the committed history: the same version number never names two definitions
    # (HEAD: uncommitted edits; HEAD~1: the last commit; a lower version = a revert, allowed)
    for rev in ("HEAD", "HEAD~1"):
        previous = _git_versions(rev)
        if previous is not None:
            problems = check_versions(committed, catalog.FAMILIES.values(), previous=previous)
            assert not problems, f"versus {rev}:\n" + "\n".join(problems)


def _fam(name: str, code_hash: str, version: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, code_hash=code_hash, version=version, features=())


def test_a_changed_hash_fails_the_check_until_bumped(tmp_path) -> None:
    path = tmp_path / "versions.yaml"
    families = {"a": _fam("a", "h1"), "b": _fam("b", "x1")}
    assert bump(path, ["a", "b"], families) == {"a": 1, "b": 1}
    assert check_versions(load_versions(path), families.values()) == []

    families["a"] = _fam("a", "h2")  # someone edits family a's code
    problems = check_versions(load_versions(path), families.values())
    assert any("'a' changed" in p and "h2" in p and "h1" in p for p in problems), problems
    assert "finfeast versions bump a" in problems[-1] and "git revert" in problems[-1]
    assert not any("'b'" in p for p in problems)

    before = path.read_text()
    assert bump(path, ["a", "b"], families) == {"a": 2}  # b unchanged: not bumped
    assert load_versions(path) == {
        "a": {"version": 2, "code_hash": "h2"},
        "b": {"version": 1, "code_hash": "x1"},
    }
    assert check_versions(load_versions(path), families.values()) == []
    assert "finfeast versions bump" in path.read_text()  # the header says how

    # the same number with another hash (edited in place instead of bumped) is caught vs git
    edited = {"a": {"version": 1, "code_hash": "h2"}, "b": {"version": 1, "code_hash": "x1"}}
    previous = yaml.safe_load(before)["families"]
    problems = check_versions(edited, families.values(), previous=previous)
    assert any("version stayed v1" in p for p in problems), problems
    # a revert (lower version, its old hash) is a rollback, not an error
    rolled_back = load_versions(path) | {"a": {"version": 1, "code_hash": "h1"}}
    families["a"] = _fam("a", "h1")
    assert check_versions(rolled_back, families.values(), previous=load_versions(path)) == []

    # families missing from the file, or in the file but not in the code
    problems = check_versions(
        {"a": rolled_back["a"], "gone": {"version": 3, "code_hash": "z"}}, families.values()
    )
    assert any("'b' is not in versions.yaml" in p for p in problems)
    assert any("'gone'" in p for p in problems)


def test_the_build_record_names_families_built_from_uncommitted_code(tmp_path) -> None:
    repo, profile = tmp_path / "repo", tmp_path / "var"
    repo.mkdir()
    settings = SimpleNamespace(repo_path=repo, profile_dir=profile)
    bump(versions_path(repo), ["a", "b"], {"a": _fam("a", "h1"), "b": _fam("b", "x1")})
    assert record_build(settings, [_fam("a", "h9"), _fam("b", "x1")]) == {"a": 1, "b": 1}
    record = active_versions(history_path(profile))
    assert record["a"] == {"version": 1, "code_hash": "h9", "versioned": False}
    assert record["b"]["versioned"] is True


def test_service_versions_are_immutable_yaml_files(tmp_path) -> None:
    assert next_service_version(tmp_path, "price_model", ["a", "b"]) == (1, True)
    path = save_service_spec(tmp_path, "price_model_v1", ["a", "b"], "first", {"auc": 0.5})
    assert path.name == "price_model_v1.yaml"
    assert yaml.safe_load(path.read_text())["features"] == ["a", "b"]
    assert load_service_specs(tmp_path)[0]["tags"] == {"auc": "0.5"}  # Feast tags are strings
    assert next_service_version(tmp_path, "price_model", ["a", "b"]) == (1, False)
    assert next_service_version(tmp_path, "price_model", ["a", "c"]) == (2, True)
    with pytest.raises(Exception, match="immutable"):
        save_service_spec(tmp_path, "price_model_v1", ["x"], "again", {})
    assert yaml.safe_load(path.read_text())["features"] == ["a", "b"]  # untouched


def _view_tags(settings) -> dict[str, str]:
    return dict(get_store(settings, fresh=True).get_feature_view(VIEW).tags)


def _change_vix_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate editing transforms/context.py: VIX (and all macro/FX) values may be at most one
    day old instead of five, and the documented convention says so (so the code hash changes)."""
    monkeypatch.setattr(context, "MACRO_TOLERANCE", pd.Timedelta(days=1))
    spec = catalog.FAMILIES[FAMILY]
    features = tuple(
        dataclasses.replace(f, convention=f.convention.replace("5 days", "1 day"))
        for f in spec.features
    )
    changed = dataclasses.replace(spec, features=features)
    assert changed.code_hash != spec.code_hash
    monkeypatch.setitem(catalog.FAMILIES, FAMILY, changed)


@pytest.mark.slow
def test_change_bump_apply_revert_reproduces_the_training_set(
    settings_factory, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = daily_repo_copy()
    settings = settings_factory("local", "versioning", repo_path=repo)
    versions_file = versions_path(repo)
    committed_text = versions_file.read_text()
    write_canonical_tables(settings, data_dir, ("XOM", "CVX", "COP", "JPM"))
    # stale per-deployment state of the old design must not reach the registry
    (settings.profile_dir / "feature_services").mkdir(parents=True)
    (settings.profile_dir / "feature_versions.json").write_text(
        json.dumps(
            {"active": {FAMILY: 7}, "families": {FAMILY: [{"version": 7, "code_hash": "x"}]}}
        )
    )
    v1 = build_feature_tables(settings).versions
    save_service_spec(
        repo / "services", "price_model_v1", SERVICE_FEATURES, "versioning test service", {}
    )
    apply_repo(settings)
    original_hash = _view_tags(settings)["code_hash"]
    assert original_hash == catalog.FAMILIES[FAMILY].code_hash
    committed = load_versions(versions_file)[FAMILY]["version"]  # the version in git
    assert _view_tags(settings)["family_version"] == str(v1[FAMILY]) == str(committed)
    before = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])

    # 1. change the definition: the check fails and says how to bump; bump; rebuild
    with monkeypatch.context() as m:
        _change_vix_definition(m)
        problems = check_versions(load_versions(versions_file), catalog.FAMILIES.values())
        assert f"finfeast versions bump {FAMILY}" in problems[-1], problems
        assert bump(versions_file, [FAMILY], catalog.FAMILIES) == {FAMILY: committed + 1}
        bumped = build_feature_tables(settings)
        v2 = bumped.versions
        assert v2[FAMILY] == committed + 1
        assert bumped.version_changes == {FAMILY: (committed, committed + 1)}
        assert f"{FAMILY} v{committed} -> v{committed + 1}" in bumped.to_rows()[-1]["detail"]
        assert {k: v for k, v in v2.items() if k != FAMILY} == {
            k: v for k, v in v1.items() if k != FAMILY
        }
        plan = plan_repo(settings)
        assert VIEW in plan and "family_version" in plan, plan
        apply_repo(settings)
        assert _view_tags(settings)["family_version"] == str(committed + 1)
        assert _view_tags(settings)["code_hash"] == catalog.FAMILIES[FAMILY].code_hash
        assert _view_tags(settings)["code_hash"] != original_hash
        changed = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])
    # the change is real: Monday VIX values (Friday's close is > 1 day old) are now null
    assert changed["vix"].isna().sum() > before["vix"].isna().sum() + 100
    pd.testing.assert_series_equal(changed["ret_1"], before["ret_1"])

    # 2. roll back = revert (the code and versions.yaml together): old number and values come back
    versions_file.write_text(committed_text)
    assert check_versions(load_versions(versions_file), catalog.FAMILIES.values()) == []
    rolled_back = build_feature_tables(settings)
    assert rolled_back.versions == v1
    assert rolled_back.version_changes == {FAMILY: (committed + 1, committed)}
    assert "family_version" in plan_repo(settings)
    apply_repo(settings)
    assert _view_tags(settings)["family_version"] == str(committed)
    assert _view_tags(settings)["code_hash"] == original_hash
    assert "No changes to registry" in plan_repo(settings)
    after = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    services = get_store(settings, fresh=True).list_feature_services()
    assert sorted(s.name for s in services) == ["daily_v1", "price_model_v1"]  # nothing from var/
