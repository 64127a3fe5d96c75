"""Definition change -> version bump -> `feast plan` diff -> apply -> rollback -> same training set."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pandas as pd
import pytest
from featstore_inputs import daily_repo_copy, write_canonical_tables

from finfeast.store import apply_repo, get_store, plan_repo
from transforms import catalog, context
from transforms.build import build_feature_tables
from transforms.training import build_training_set
from transforms.versioning import (
    next_service_version,
    resolve_versions,
    save_service_spec,
)

FAMILY = context.FAMILY
VIEW = f"daily_{FAMILY}"
SERVICE_FEATURES = ["vix", "vix_chg_1", "ret_1", "beta_spx_60"]


def _fam(name: str, code_hash: str, version: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, code_hash=code_hash, version=version, features=())


def test_new_hash_bumps_and_an_old_hash_gets_its_old_version_back() -> None:
    history: dict = {}
    assert resolve_versions(history, [_fam("a", "h1"), _fam("b", "x1")]) == {"a": 1, "b": 1}
    assert resolve_versions(history, [_fam("a", "h2"), _fam("b", "x1")]) == {"a": 2, "b": 1}
    assert resolve_versions(history, [_fam("a", "h3")])["a"] == 3
    assert resolve_versions(history, [_fam("a", "h1")])["a"] == 1  # rollback
    assert resolve_versions(history, [_fam("a", "h4", version=7)])["a"] == 7  # manual floor
    assert [e["version"] for e in history["families"]["a"]] == [1, 2, 3, 7]


def test_service_versions_are_immutable(tmp_path) -> None:
    assert next_service_version(tmp_path, "price_model", ["a", "b"]) == (1, True)
    save_service_spec(tmp_path, "price_model_v1", ["a", "b"], "first", {"version": "1"})
    assert next_service_version(tmp_path, "price_model", ["a", "b"]) == (1, False)
    assert next_service_version(tmp_path, "price_model", ["a", "c"]) == (2, True)
    with pytest.raises(Exception, match="immutable"):
        save_service_spec(tmp_path, "price_model_v1", ["x"], "again", {})


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
def test_change_apply_rollback_reproduces_the_training_set(
    settings_factory, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory("local", "versioning", repo_path=daily_repo_copy())
    write_canonical_tables(settings, data_dir, ("XOM", "CVX", "COP", "JPM"))
    v1 = build_feature_tables(settings).versions
    save_service_spec(
        settings.profile_dir / "feature_services",
        "price_model_v1",
        SERVICE_FEATURES,
        "versioning test service",
        {"version": "1"},
    )
    apply_repo(settings)
    original_hash = _view_tags(settings)["code_hash"]
    assert _view_tags(settings)["family_version"] == str(v1[FAMILY]) == "1"
    before = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])

    # 1. change the definition: the next build bumps only that family's version
    with monkeypatch.context() as m:
        _change_vix_definition(m)
        bumped = build_feature_tables(settings)
        v2 = bumped.versions
        assert v2[FAMILY] == 2
        assert bumped.version_changes == {FAMILY: (1, 2)}
        assert f"{FAMILY} v1 -> v2" in bumped.to_rows()[-1]["detail"]
        assert {k: v for k, v in v2.items() if k != FAMILY} == {
            k: v for k, v in v1.items() if k != FAMILY
        }
        plan = plan_repo(settings)
        assert VIEW in plan and "family_version" in plan, plan
        apply_repo(settings)
        assert _view_tags(settings)["family_version"] == "2"
        assert _view_tags(settings)["code_hash"] != original_hash
        changed = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])
    # the change is real: Monday VIX values (Friday's close is > 1 day old) are now null
    assert changed["vix"].isna().sum() > before["vix"].isna().sum() + 100
    pd.testing.assert_series_equal(changed["ret_1"], before["ret_1"])

    # 2. roll back (the code is reverted): the old version number and values come back
    rolled_back = build_feature_tables(settings)
    assert rolled_back.versions == v1
    assert rolled_back.version_changes == {FAMILY: (2, 1)}
    assert "family_version" in plan_repo(settings)
    apply_repo(settings)
    assert _view_tags(settings)["family_version"] == "1"
    assert _view_tags(settings)["code_hash"] == original_hash
    after = build_training_set(settings, "price_model_v1", labels=["fwd_ret_5"])
    pd.testing.assert_frame_equal(after, before, check_exact=True)
