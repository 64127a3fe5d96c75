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
    features = [
        f"listings:{f}" for f in ("name", "sector", "exchange", "is_etf", "date_added", "in_sp500")
    ]
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
    assert got["in_sp500"] == [True, False]

    # point in time through stock Feast: the sector and membership known at each time
    import pandas as pd

    entity_df = pd.DataFrame(
        {
            "symbol": ["GOOGL", "GOOGL", "AAPL", "FB", "TWX", "GOOGL"],
            "event_timestamp": pd.to_datetime(
                [
                    "2015-06-01T20:00:00Z",  # latest snapshot 2014-12-07 lacks GOOGL (an edit)
                    "2016-06-01T20:00:00Z",
                    "2012-12-01T20:00:00Z",  # before the first snapshot: nothing known
                    "2015-06-01T20:00:00Z",
                    "2017-06-01T20:00:00Z",
                    "2026-09-01T00:00:00Z",
                ],
                utc=True,
            ),
        }
    )
    hist = store.get_historical_features(
        entity_df=entity_df, features=["listings:sector", "listings:in_sp500"]
    ).to_df()
    hist = hist.sort_values("event_timestamp", kind="stable").set_index(
        ["symbol", "event_timestamp"]
    )
    at = hist.loc
    ts = pd.Timestamp
    assert at[("GOOGL", ts("2015-06-01T20:00:00Z")), "sector"] == "Information Technology"
    assert not bool(at[("GOOGL", ts("2015-06-01T20:00:00Z")), "in_sp500"])
    assert at[("GOOGL", ts("2016-06-01T20:00:00Z")), "sector"] == "Information Technology"
    assert bool(at[("GOOGL", ts("2016-06-01T20:00:00Z")), "in_sp500"])
    assert pd.isna(at[("AAPL", ts("2012-12-01T20:00:00Z")), "sector"])
    assert pd.isna(at[("AAPL", ts("2012-12-01T20:00:00Z")), "in_sp500"])
    assert at[("FB", ts("2015-06-01T20:00:00Z")), "sector"] == "Information Technology"
    assert at[("TWX", ts("2017-06-01T20:00:00Z")), "sector"] == "Consumer Discretionary"
    assert at[("GOOGL", ts("2026-09-01T00:00:00Z")), "sector"] == "Communication Services"
