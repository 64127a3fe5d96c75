"""arch_indices and lean_daily: every row accounted for, symbols and asset classes as documented,
the overlap with stocks_5yr resolved per symbol (LEAN owns its 12 symbols; the other copy is
quarantined as superseded)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
from test_stocks_5yr import independent_defects

from finfeast.offline import open_tables

ETFS = {"SPY", "QQQ", "IWM", "EEM", "USO", "BNO"}


def test_arch_indices_match_the_package_data(full_local) -> None:
    import arch.data.nasdaq
    import arch.data.sp500

    settings, summary = full_local
    src = summary.source("arch_indices")
    sp, nq = arch.data.sp500.load(), arch.data.nasdaq.load()
    assert src.status == "ok"
    assert src.rows_read == len(sp) + len(nq)
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    bars = open_tables(settings).read("bars")
    gspc = bars[bars["symbol"] == "^GSPC"].set_index("event_timestamp")
    assert set(bars.loc[bars["symbol"].isin(["^GSPC", "^IXIC"]), "asset_class"]) == {"index"}
    assert len(gspc) + (bars["symbol"] == "^IXIC").sum() == src.rows_loaded
    # 1999-01-04 was EST: close at 21:00 UTC
    assert gspc.loc[pd.Timestamp("1999-01-04 21:00", tz="UTC"), "close"] == sp["Close"].iloc[0]
    assert gspc["close"].sum() == sp["Close"].sum()


def _lean_rows(data_dir: Path) -> pd.DataFrame:
    with gzip.open(data_dir / "daily" / "lean_equity_daily_bars.csv.gz", "rt") as fh:
        return pd.read_csv(fh)


def test_lean_symbols_and_asset_classes(full_local, data_dir: Path) -> None:
    settings, summary = full_local
    lean = _lean_rows(data_dir)
    bars = open_tables(settings).read("bars", columns=["symbol", "asset_class", "source"])
    mine = bars[bars["source"] == "lean_daily"]
    assert set(mine["symbol"]) == set(lean["symbol"].str.upper())
    classes = mine.groupby("symbol")["asset_class"].first()
    assert {s for s, c in classes.items() if c == "etf"} == ETFS & set(classes.index)
    assert set(classes[~classes.index.isin(ETFS)]) == {"equity"}


def test_lean_owns_its_symbols_and_the_overlap_is_superseded_not_lost(
    full_local, data_dir: Path
) -> None:
    """One source per symbol: every valid all_stocks_5yr row of a LEAN symbol (AAPL, AIG, BAC,
    IBM, GOOG, GOOGL) is quarantined as `superseded` by lean_daily, whatever its date; LEAN
    loads every one of its rows."""
    settings, summary = full_local
    lean = _lean_rows(data_dir)
    with gzip.open(data_dir / "daily" / "all_stocks_5yr.csv.gz", "rt") as fh:
        stocks = pd.read_csv(fh, usecols=["date", "Name"])
    bad = set(independent_defects(data_dir / "daily" / "all_stocks_5yr.csv.gz"))
    lean_symbols = set(lean["symbol"].str.upper())
    expected = {
        k for k in zip(stocks["date"], stocks["Name"], strict=True)
        if k not in bad and k[1] in lean_symbols
    }  # fmt: skip
    src = summary.source("lean_daily")
    assert len(expected) > 5000
    assert src.rules == {} and src.rows_loaded == src.rows_read == len(lean)
    q = open_tables(settings).read("quarantine")
    sup = q[(q["source"] == "stocks_5yr") & (q["rule"] == "superseded")]
    assert {json.loads(d)["superseded_by"] for d in sup["detail"]} == {"lean_daily"}
    keys = {(json.loads(r)["date"], json.loads(r)["Name"]) for r in sup["row"]}
    assert keys == expected
    assert summary.source("stocks_5yr").rules["superseded"] == len(expected)


def test_zero_volume_days_load(full_local, data_dir: Path) -> None:
    settings, _ = full_local
    lean = _lean_rows(data_dir)
    zero = lean[lean["volume"] == 0]
    assert len(zero) == 26
    bars = open_tables(settings).read("bars", columns=["symbol", "volume", "source"])
    # every zero-volume LEAN day is in bars (LEAN owns its symbols' whole series)
    lean_zero = bars[(bars["source"] == "lean_daily") & (bars["volume"] == 0)]
    assert len(lean_zero) == len(zero)
