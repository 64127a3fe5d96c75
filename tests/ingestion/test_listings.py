"""listings: point-in-time change rows from the S&P 500 constituents history + NASDAQ listings.

Oracles: the raw snapshot files and index.csv of data README §8, read here with the csv module.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from finfeast.offline import open_tables

HIST = Path("datasets") / "s-and-p-500-companies-history"


@pytest.fixture(scope="module")
def ingested(settings_factory):
    from ingestion import run_ingest

    settings = settings_factory("local", "listings_pit")
    summary = run_ingest(settings, sources=["listings"], progress=False)
    assert summary.status == "ok"
    tables = open_tables(settings)
    return tables.read("listings"), tables.read("quarantine"), summary


@pytest.fixture(scope="module")
def snapshots(data_dir) -> pd.DataFrame:
    idx = pd.read_csv(data_dir / HIST / "index.csv")
    author = pd.to_datetime(idx["author_date"], utc=True)
    committer = pd.to_datetime(idx["committer_date"], utc=True)
    idx["known"] = author.where(author > committer, committer)
    return idx.sort_values("known", kind="stable").reset_index(drop=True)


def _symbols(data_dir: Path, file: str) -> set[str]:
    with gzip.open(data_dir / HIST / file, "rt", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return {r[0].strip().split(" ")[0].replace("-", ".") for r in rows if r and r[0].strip()}


def _asof(listings: pd.DataFrame, symbol: str, t: str) -> pd.Series | None:
    rows = listings[(listings["symbol"] == symbol) & (listings["event_timestamp"] <= t)]
    return rows.sort_values("event_timestamp").iloc[-1] if len(rows) else None


def test_every_row_is_stamped_at_a_snapshot_commit_time(ingested, snapshots) -> None:
    listings, _, _ = ingested
    nasdaq = listings["source"].str.contains("nasdaq") & ~listings["source"].str.contains("sp500")
    stamps = set(snapshots["known"]) | {pd.Timestamp("2026-08-01T01:31:00Z")}  # NASDAQ trailer
    assert listings["event_timestamp"].isin(stamps).all()
    assert listings["event_timestamp"].min() == snapshots["known"].iloc[0]  # nothing earlier
    assert not listings.duplicated(["symbol", "event_timestamp"]).any()
    # the two snapshots whose author and committer dates differ use the later one
    differ = snapshots[
        pd.to_datetime(snapshots["author_date"], utc=True)
        != pd.to_datetime(snapshots["committer_date"], utc=True)
    ]
    assert len(differ) == 2 and listings["event_timestamp"].isin(differ["known"]).any()
    assert nasdaq.any()


def test_membership_as_of_any_time_equals_the_latest_snapshot(
    ingested, snapshots, data_dir
) -> None:
    listings, _, _ = ingested
    for when in (
        "2013-03-01",
        "2014-06-01",
        "2015-01-15",
        "2017-06-01",
        "2021-03-12",
        "2024-06-01",
    ):
        t = pd.Timestamp(when, tz="UTC")
        latest = snapshots[snapshots["known"] <= t].iloc[-1]
        raw = _symbols(data_dir, latest["file"])
        known = listings[listings["event_timestamp"] <= t].sort_values("event_timestamp")
        state = known.groupby("symbol").tail(1)
        members = set(state.loc[state["in_sp500"], "symbol"])
        # the raw cells that are no ticker (a company name typed into the Symbol cell) are out
        assert members == {s for s in raw if s.isupper() and len(s) <= 6}, when
    assert _asof(listings, "AAPL", "2012-12-27T20:00:00Z") is None  # before the first snapshot


def test_sectors_as_known_then_googl_fb_twx_brk(ingested) -> None:
    listings, _, _ = ingested
    assert _asof(listings, "GOOGL", "2015-06-01")["sector"] == "Information Technology"
    assert _asof(listings, "GOOGL", "2026-09-01")["sector"] == "Communication Services"
    for sym in ("FB", "TWX"):
        for year in (2014, 2015, 2016, 2017):
            row = _asof(listings, sym, f"{year}-07-01")
            assert row is not None and row["sector"] and bool(row["in_sp500"]), (sym, year)
    # BRK-B (later snapshots) and BRK.B are one symbol, spelled as in the bars
    assert not listings["symbol"].str.contains("-").any()
    assert bool(_asof(listings, "BRK.B", "2021-06-01")["in_sp500"])
    # 2023-03-07 holds sub-industries in its Sector column: they restate no sector
    assert _asof(listings, "AAPL", "2023-03-20")["sector"] == "Information Technology"


def test_current_attributes_combine_sp500_and_nasdaq(ingested) -> None:
    listings, _, _ = ingested
    latest = listings.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    aapl = latest.loc["AAPL"]
    assert aapl["sector"] == "Information Technology" and aapl["exchange"] == "NASDAQ"
    assert aapl["source"] == "listings:sp500+nasdaq" and aapl["date_added"] == "1982-11-30"
    assert bool(latest.loc["QQQ", "is_etf"]) is True and not bool(latest.loc["QQQ", "in_sp500"])
    assert latest.loc["MMM", "sector"] == "Industrials" and latest.loc["MMM", "exchange"] is None


def test_trailer_test_issues_and_bad_symbols_are_quarantined(ingested) -> None:
    _, q, summary = ingested
    src = summary.source("listings")
    q = q[q["source"] == "listings"]
    trailer = q[q["rule"] == "required_fields"]
    assert any("File Creation Time" in (json.loads(r)["Symbol"] or "") for r in trailer["row"])
    assert src.rules["required_fields"] == 2
    tests = q[q["rule"] == "test_issue"]
    assert len(tests) and all(json.loads(r)["Test Issue"] == "Y" for r in tests["row"])
    bad = [json.loads(r) for r in q.loc[q["rule"] == "symbol_format", "row"]]
    assert [b["symbol"] for b in bad] == ["American Airlines Group"]
    assert src.rows_loaded + src.rows_quarantined == src.rows_read


def test_a_corrupt_snapshot_fails_the_source_with_its_name(data_dir, tmp_path, settings_factory):
    from dataclasses import replace

    from ingestion_data import linked_data_dir

    from ingestion import run_ingest

    name = "snapshots/2015-09-22_1dfe5d0908a8.csv.gz"
    broken = linked_data_dir(
        data_dir, tmp_path / "d", {f"{HIST.as_posix()}/{name}": b"\x1f\x8bnot gzip"}
    )
    settings = replace(settings_factory("local", "listings_broken"), data_dir=broken)
    summary = run_ingest(settings, sources=["listings"], progress=False)
    src = summary.source("listings")
    assert src.status == "failed" and "2015-09-22_1dfe5d0908a8" in src.error
