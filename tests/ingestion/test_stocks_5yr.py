"""stocks_5yr: the 23 real defects of all_stocks_5yr are quarantined under the right rule and
every other row is loaded. Expected defects are computed here independently (csv module)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pandas as pd

from finfeast.offline import open_tables


def independent_defects(path: Path) -> dict[tuple[str, str], str]:
    """(date, ticker) -> first failing rule, by a plain re-implementation of the bar rules."""
    out = {}
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["date"], row["Name"])
            fields = ("open", "high", "low", "close", "volume")
            if any(row[f].strip() == "" for f in fields):
                out[key] = "required_fields"
                continue
            o, h, lo, c = (float(row[f]) for f in ("open", "high", "low", "close"))
            if min(o, h, lo, c) <= 0:
                out[key] = "price_not_positive"
            elif h < max(o, c):
                out[key] = "high_below_open_close"
            elif lo > min(o, c):
                out[key] = "low_above_open_close"
            elif float(row["volume"]) < 0:
                out[key] = "negative_volume"
    return out


def quarantined(settings, source: str) -> pd.DataFrame:
    q = open_tables(settings).read("quarantine")
    return q[q["source"] == source].reset_index(drop=True)


def test_each_defect_is_quarantined_under_its_rule(full_local, data_dir: Path) -> None:
    settings, summary = full_local
    expected = independent_defects(data_dir / "daily" / "all_stocks_5yr.csv.gz")
    q = quarantined(settings, "stocks_5yr")
    q = q[q["rule"] != "superseded"]  # the LEAN symbols' rows (test_daily_sources)
    got = {
        (json.loads(r)["date"], json.loads(r)["Name"]): rule
        for r, rule in zip(q["row"], q["rule"], strict=True)
    }
    assert len(expected) == 23
    assert got == expected
    # the data README's own examples
    assert got[("2016-05-19", "LNT")] == "low_above_open_close"
    assert got[("2014-05-19", "AOS")] == "high_below_open_close"
    assert got[("2015-06-09", "REGN")] == "required_fields"
    src = summary.source("stocks_5yr")
    rules = {k: v for k, v in src.rules.items() if k != "superseded"}
    assert rules == pd.Series(list(expected.values())).value_counts().to_dict()


def test_every_other_row_is_loaded(full_local, data_dir: Path) -> None:
    settings, summary = full_local
    src = summary.source("stocks_5yr")
    with gzip.open(data_dir / "daily" / "all_stocks_5yr.csv.gz", "rt") as fh:
        n_rows = sum(1 for _ in fh) - 1
    assert src.status == "ok"
    assert src.rows_read == n_rows
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    assert src.rows_quarantined == 23 + src.rules["superseded"]
    bars = open_tables(settings).read("bars", columns=["symbol", "source", "volume"])
    mine = bars[bars["source"] == "stocks_5yr"]
    assert len(mine) == src.rows_loaded
    # 505 tickers, of which AAPL, AIG, BAC, IBM, GOOG and GOOGL belong to LEAN (one source each)
    assert mine["symbol"].nunique() == 505 - 6


def test_quarantine_keeps_the_original_row(full_local) -> None:
    settings, _ = full_local
    q = quarantined(settings, "stocks_5yr")
    row = json.loads(q.loc[q["row"].str.contains('"LNT"')].iloc[0]["row"])
    assert row == {
        "date": "2016-05-19",
        "open": 35.19,
        "high": 35.785,
        "low": 35.085,
        "close": 17.87,
        "volume": 1231722.0,
        "Name": "LNT",
    }


def test_daily_bars_are_stamped_at_the_session_close(full_local) -> None:
    settings, _ = full_local
    bars = open_tables(settings).read("bars", columns=["symbol", "event_timestamp", "close"])
    aal = bars[bars["symbol"] == "AAL"].set_index("event_timestamp")["close"]
    # winter (EST, UTC-5) and summer (EDT, UTC-4) closes
    assert aal[pd.Timestamp("2013-02-08 21:00", tz="UTC")] == 14.75
    assert pd.Timestamp("2013-06-03 20:00", tz="UTC") in aal.index
    # early close (day after Thanksgiving, 13:00 New York)
    assert pd.Timestamp("2013-11-29 18:00", tz="UTC") in aal.index
    assert str(bars["event_timestamp"].dtype) == "datetime64[ns, UTC]"
