"""`finfeast catalog`: feature discovery read back from a real applied Feast registry.

Expected values are derived from the definitions (transforms.catalog and the Feast objects read
independently), never hard-coded, so a new feature or family keeps these tests meaningful.
"""

from __future__ import annotations

import json

import pytest

from finfeast.cli import main
from finfeast.discovery import entries_from_store, parse_tag_filters, search
from finfeast.errors import FinfeastError
from finfeast.store import get_store


@pytest.fixture(scope="module")
def store(applied_local):
    return get_store(applied_local)


@pytest.fixture(scope="module")
def entries(store):
    return entries_from_store(store)


def _cli(settings, monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    for key, value in settings.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINFEAST_REPO_PATH", str(settings.repo_path))
    code = main(["catalog", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_registered_feature_is_listed_once_per_view(store, entries) -> None:
    expected = {
        (view.name, feat.name) for view in store.list_all_feature_views() for feat in view.features
    }
    got = [(e.view, e.name) for e in entries]
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_entries_carry_family_description_and_services_from_the_definitions(store, entries) -> None:
    from transforms import catalog
    from transforms.versioning import load_versions

    committed = load_versions()  # feature_repo/versions.yaml: the versions the views carry
    by_ref = {(e.view, e.name): e for e in entries}
    for family in catalog.FAMILIES.values():
        view = f"daily_{family.name}"
        if not any(e.view == view for e in entries):
            continue
        for spec in family.features:
            entry = by_ref[(view, spec.name)]
            assert entry.family == family.name
            assert entry.description == spec.description
            assert entry.version == str(committed[family.name]["version"])
            assert "symbol" in entry.entities
    for service in store.list_feature_services():
        for projection in service.feature_view_projections:
            for feat in projection.features:
                assert service.name in by_ref[(projection.name, feat.name)].services


def test_search_ranks_exact_name_first_and_needs_every_word(entries) -> None:
    target = next(e for e in entries if e.name == "rsi_14")
    hits = search(entries, text="rsi_14")
    assert hits[0].name == "rsi_14"
    words = target.description.lower().split()[:2]
    multi = search(entries, text=" ".join(words))
    assert target in multi
    assert all(all(w in e.description.lower() or w in e.name for w in words) for e in multi[:1])
    assert search(entries, text="rsi_14 no-such-word-anywhere") == []


def test_filters_by_family_tag_version_and_service(store, entries) -> None:
    trend = search(entries, family="trend")
    assert "daily_trend" in {e.view for e in trend}
    assert all(e.family == "trend" for e in trend)
    assert not [e for e in entries if e.family == "trend" and e not in trend]
    tagged = search(entries, tags={"family": "trend"})  # the view tag: the batch view only
    assert tagged and {e.view for e in tagged} == {"daily_trend"}
    assert {e.reference for e in tagged} <= {e.reference for e in trend}
    version = trend[0].version
    assert trend[0] in search(entries, version=f"v{version}")
    assert all(e.version == version for e in search(entries, version=version))
    service = store.get_feature_service("daily_v1")
    selected = {(p.name, f.name) for p in service.feature_view_projections for f in p.features}
    assert {(e.view, e.name) for e in search(entries, service="daily_v1")} == selected


def test_tag_filter_syntax_is_checked() -> None:
    assert parse_tag_filters(["kind=bar", "family = trend"]) == {"kind": "bar", "family": "trend"}
    with pytest.raises(FinfeastError, match="key=value"):
        parse_tag_filters(["kind"])


def test_cli_list_prints_a_table_of_every_feature(applied_local, entries, monkeypatch, capsys):
    code, out, _ = _cli(applied_local, monkeypatch, capsys, "list")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["feature", "view", "family", "version"]
    assert (
        lines[-1] == f"{len(entries)} of {len(entries)} features in project {applied_local.project}"
    )
    assert len(lines) == len(entries) + 2


def test_cli_search_json_with_filters_before_and_after_the_action(
    applied_local, entries, monkeypatch, capsys
) -> None:
    code, out, _ = _cli(
        applied_local, monkeypatch, capsys, "--family", "oscillators", "search", "rsi", "--json"
    )
    assert code == 0
    rows = json.loads(out)
    expected = search(entries, text="rsi", family="oscillators")
    assert [r["reference"] for r in rows] == [e.reference for e in expected]
    assert rows and all(r["family"] == "oscillators" for r in rows)


def test_cli_no_match_exits_1_and_bad_tag_is_a_one_line_error(
    applied_local, monkeypatch, capsys
) -> None:
    code, out, _ = _cli(applied_local, monkeypatch, capsys, "search", "zz-no-such-feature")
    assert code == 1 and out.startswith("0 of ")
    code = main(["catalog", "list", "--tag", "nokeyvalue"])
    assert code == 2
    assert "key=value" in capsys.readouterr().err


def test_cli_on_an_empty_registry_says_to_apply_first(settings_factory, monkeypatch, capsys):
    empty = settings_factory("local", "ops_empty")
    code, _, err = _cli(empty, monkeypatch, capsys, "list")
    assert code == 2
    assert "finfeast apply" in err


def test_catalog_features_outside_family_views_take_the_catalog_meaning(store, entries) -> None:
    """Stream views compute catalog features too: same family and description as the batch view."""
    from transforms import catalog

    names = {f.name for f in catalog.all_features()}
    untagged = {v.name for v in store.list_all_feature_views() if not (v.tags or {}).get("family")}
    borrowed = [e for e in entries if e.view in untagged and e.name in names]
    for entry in borrowed:
        spec = catalog.feature(entry.name)
        assert (entry.family, entry.description) == (spec.family, spec.description)
    others = [e for e in entries if e.view in untagged and e.name not in names]
    assert all(e.family == e.view for e in others)


@pytest.mark.prod
def test_catalog_reads_the_sql_registry_of_the_prod_profile(
    settings_factory, entries, monkeypatch, capsys
) -> None:
    from finfeast.store import apply_repo

    prod = settings_factory("prod", "ops_catalog")
    apply_repo(prod)
    code, out, _ = _cli(prod, monkeypatch, capsys, "--profile", "prod", "list", "--json")
    assert code == 0
    got = {(r["view"], r["name"], r["family"], r["version"]) for r in json.loads(out)}
    assert got == {(e.view, e.name, e.family, e.version) for e in entries}
