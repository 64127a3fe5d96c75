"""vix_oil: VIX OHLC and WTI/Brent into `macro`, stamped when known, defects quarantined."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from finfeast.offline import open_tables


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_row_accounted_for(full_local, data_dir: Path) -> None:
    settings, summary = full_local
    src = summary.source("vix_oil")
    vix = _csv(data_dir / "datasets/finance-vix/vix-daily.csv")
    wti = _csv(data_dir / "datasets/oil-prices/wti-daily.csv")
    brent = _csv(data_dir / "datasets/oil-prices/brent-daily.csv")
    assert src.rows_read == len(vix) + len(wti) + len(brent)
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    bad_vix = [
        r for r in vix
        if float(r["HIGH"]) < max(float(r["OPEN"]), float(r["CLOSE"]))
        or float(r["LOW"]) > min(float(r["OPEN"]), float(r["CLOSE"]))
    ]  # fmt: skip
    # oil: dates before the calendar (1990-01-02) cannot be stamped; of two dates EIA publishes
    # the same morning only the later one is ever the latest value
    # (1989-12-29 is published on the next business day, 1990-01-02, the first session)
    early = [r for r in wti + brent if r["Date"] < "1989-12-29"]
    oil_rules = {
        k: v
        for k, v in src.rules.items()
        if k in ("outside_calendar", "published_with_a_later_date")
    }
    assert oil_rules["outside_calendar"] == len(early)
    assert src.rows_quarantined == len(bad_vix) + sum(oil_rules.values())
    assert len(bad_vix) > 0
    macro = open_tables(settings).read("macro")
    counts = macro["series"].value_counts()
    assert counts["VIX"] == counts["VIX_OPEN"] == len(vix) - len(bad_vix)
    assert counts["WTI"] + counts["BRENT"] == len(wti) + len(brent) - sum(oil_rules.values())


def test_negative_wti_is_real_and_loaded(full_local) -> None:
    settings, _ = full_local
    macro = open_tables(settings).read("macro")
    wti = macro[macro["series"] == "WTI"].set_index("event_timestamp")["value"]
    # published by EIA the next business morning: known at the 2020-04-21 close (20:00 UTC)
    assert wti[pd.Timestamp("2020-04-21 20:00", tz="UTC")] == -36.98


def test_vix_is_stamped_at_its_close(full_local) -> None:
    settings, _ = full_local
    macro = open_tables(settings).read("macro")
    vix = macro[macro["series"] == "VIX"].set_index("event_timestamp")["value"]
    assert vix[pd.Timestamp("1990-01-02 21:15", tz="UTC")] == 17.24
