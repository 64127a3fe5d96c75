"""listings: S&P 500 constituents + NASDAQ listings, one row per symbol, trailer quarantined."""

from __future__ import annotations

import json

from finfeast.offline import open_tables


def test_combined_attributes(full_local) -> None:
    settings, _ = full_local
    lst = open_tables(settings).read("listings").set_index("symbol")
    aapl = lst.loc["AAPL"]
    assert aapl["sector"] == "Information Technology"
    assert aapl["exchange"] == "NASDAQ"
    assert aapl["source"] == "listings:sp500+nasdaq"
    assert bool(lst.loc["QQQ", "is_etf"]) is True
    assert lst.loc["MMM", "sector"] == "Industrials" and lst.loc["MMM", "exchange"] is None
    assert lst.index.is_unique


def test_trailer_and_test_issues_are_quarantined(full_local) -> None:
    settings, summary = full_local
    src = summary.source("listings")
    q = open_tables(settings).read("quarantine")
    q = q[q["source"] == "listings"]
    trailer = q[q["rule"] == "required_fields"]
    assert any(
        "File Creation Time" in json.loads(r)["Symbol"]
        for r in trailer["row"]
        if json.loads(r)["Symbol"]
    )
    assert src.rules["required_fields"] == 2
    tests = q[q["rule"] == "test_issue"]
    assert all(json.loads(r)["Test Issue"] == "Y" for r in tests["row"])
    assert src.rows_loaded + src.rows_quarantined == src.rows_read


def test_snapshot_time_not_backdated(full_local) -> None:
    """Today's attributes must not be visible to historical as-of joins (no look-ahead)."""
    settings, _ = full_local
    lst = open_tables(settings).read("listings")
    assert lst["event_timestamp"].min().year >= 2026
