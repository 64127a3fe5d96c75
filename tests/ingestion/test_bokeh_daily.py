"""bokeh_daily: real daily prices and corporate actions from PyPI with NO data directory.

Oracles: the package's own CSV read with the csv module, Apple's and Microsoft's published split
history (AAPL 2:1 on 2000-06-21 and 2005-02-28; MSFT 2:1 on 2003-02-18; MSFT's $3 special
dividend of 2004-11-15 plus the regular $0.08), and exchange-calendars for the stamps.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import replace

import exchange_calendars as xcals
import pandas as pd
import pytest

from finfeast.offline import open_tables


@pytest.fixture(scope="module")
def no_data_dir(settings_factory):  # noqa: ANN201
    from ingestion import run_ingest

    settings = replace(settings_factory("local", "bokeh_nodata"), data_dir=None)
    patch = pytest.MonkeyPatch()
    patch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    try:
        return settings, run_ingest(settings, progress=False)
    finally:
        patch.undo()


def _raw_rows() -> list[dict[str, str]]:
    from ingestion.bokeh_daily import stocks_path

    with gzip.open(stocks_path(), "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_ingest_without_data_dir_loads_real_bars(no_data_dir) -> None:
    settings, summary = no_data_dir
    assert summary.status == "ok"
    src = summary.source("bokeh_daily")
    rows = _raw_rows()
    assert src.status == "ok" and src.rows_quarantined == 0
    bars = open_tables(settings).read("bars")
    mine = bars[bars["source"] == "bokeh_daily"]
    assert len(mine) == len(rows)
    assert set(mine["symbol"]) == {"AAPL", "FB", "GOOGL", "IBM", "MSFT"}  # GOOG = class A
    assert set(mine["price_basis"]) == {"as_traded"}
    for name in ("lean_daily", "stocks_5yr", "vix_oil", "trading"):
        assert summary.source(name).status == "skipped"
    # unadjusted close as in the file, at the XNYS close of its session
    cal = xcals.get_calendar("XNYS", start="2000-01-01")
    first = rows[0]
    row = mine[(mine["symbol"] == first["Ticker"])].sort_values("event_timestamp").iloc[0]
    assert row["close"] == float(first["Close"])
    assert row["event_timestamp"] == cal.session_close(pd.Timestamp(first["Date"]))


def test_actions_derived_from_adjusted_close(no_data_dir) -> None:
    settings, _ = no_data_dir
    a = open_tables(settings).read("corporate_actions")
    a["ex"] = a["ex_date"].dt.strftime("%Y-%m-%d")
    splits = a[a["split_ratio"] != 1.0]
    got = {
        (s, e, r)
        for s, e, r in zip(splits["symbol"], splits["ex"], splits["split_ratio"], strict=True)
    }
    assert got == {
        ("AAPL", "2000-06-21", 2.0),
        ("AAPL", "2005-02-28", 2.0),
        ("MSFT", "2003-02-18", 2.0),
    }
    msft = a[a["symbol"] == "MSFT"].set_index("ex")
    assert msft.loc["2004-11-15", "split_ratio"] == 1.0
    assert msft.loc["2004-11-15", "cash_dividend"] == pytest.approx(3.08, rel=0.03)
    # every dividend factor is the file's Adj Close / Close ratio change, recomputed here
    rows = [r for r in _raw_rows() if r["Ticker"] == "MSFT"]
    f = {r["Date"]: float(r["Adj Close"]) / float(r["Close"]) for r in rows}
    dates = [r["Date"] for r in rows]
    prev = dict(zip(dates[1:], dates, strict=False))
    for ex, factor in msft["dividend_price_factor"].items():
        if msft.loc[ex, "split_ratio"] == 1.0:
            assert factor == pytest.approx(f[prev[ex]] / f[ex], rel=1e-12)
    cal = xcals.get_calendar("XNYS", start="2000-01-01")
    assert (a["event_timestamp"] == [cal.session_open(pd.Timestamp(e)) for e in a["ex"]]).all()


def test_with_data_dir_lean_owns_the_overlap(full_local) -> None:
    settings, summary = full_local
    src = summary.source("bokeh_daily")
    assert src.rows_read == src.rows_loaded + src.rows_quarantined
    bars = open_tables(settings).read("bars")
    assert not (bars["source"] == "bokeh_daily").any()  # LEAN and all_stocks_5yr own all five
    d = open_tables(settings).read("vendor_disagreements")
    mine = d[d["loser_source"] == "bokeh_daily"]
    assert set(mine["winner_source"]) <= {"lean_daily", "stocks_5yr"} and len(mine) > 0
    a = open_tables(settings).read("corporate_actions")
    assert set(a.loc[a["symbol"] == "AAPL", "source"]) == {"lean_actions"}
