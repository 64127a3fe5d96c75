"""The `listings` Feast view over the ingested listings table: apply, materialize, serve."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from finfeast.config import REPO_ROOT
from ingestion import run_ingest


@pytest.mark.slow
def test_listings_view_serves_ingested_attributes(settings_factory, tmp_path: Path) -> None:
    from finfeast.store import apply_repo, get_store, materialize

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("entities.py", "data_sources.py", "reference_views.py", "feature_store.yaml"):
        shutil.copy(REPO_ROOT / "feature_repo" / name, repo / name)
    settings = replace(settings_factory("local", "refview"), repo_path=repo)
    # an ingest without the listings source leaves an empty table: apply + materialize still work
    assert run_ingest(settings, sources=["vix_oil"], progress=False).status == "ok"
    applied = apply_repo(settings)
    assert applied.feature_views == 1
    materialize(settings)
    store = get_store(settings)
    features = [f"listings:{f}" for f in ("name", "sector", "exchange", "is_etf", "date_added")]
    empty = store.get_online_features(features=features, entity_rows=[{"symbol": "AAPL"}])
    assert empty.to_dict()["sector"] == [None]
    summary = run_ingest(settings, sources=["listings"], progress=False)
    assert summary.status == "ok"
    # the snapshot's event time lies before the previous materialization's end: incremental
    # materialization would skip it (late data), so this reload names its start
    materialize(settings, start="2000-01-01")
    got = store.get_online_features(
        features=features, entity_rows=[{"symbol": "AAPL"}, {"symbol": "QQQ"}]
    ).to_dict()
    assert got["sector"] == ["Information Technology", None]
    assert got["exchange"] == ["NASDAQ", "NASDAQ"]
    assert got["is_etf"] == [False, True]
    assert got["name"][0] == "Apple Inc."
    assert got["date_added"] == ["1982-11-30", None]
