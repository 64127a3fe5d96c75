"""Known-at timestamps: local close times across DST, unparseable dates become NaT."""

from __future__ import annotations

import pandas as pd

from ingestion.timestamps import local_time_utc, session_close_utc


def test_session_close_follows_new_york_dst() -> None:
    got = session_close_utc(
        pd.Series(["2013-02-08", "2013-06-03", None, "bad", "2013-02-08"]), "%Y-%m-%d"
    )
    assert got.tolist()[:2] == [
        pd.Timestamp("2013-02-08 21:00", tz="UTC"),  # EST
        pd.Timestamp("2013-06-03 20:00", tz="UTC"),  # EDT
    ]
    assert got.isna().tolist() == [False, False, True, True, False]
    assert got.iloc[4] == got.iloc[0]


def test_end_of_day_in_a_fixed_offset_zone() -> None:
    got = local_time_utc(pd.Series(["2018-08-22"]), 24, 0, "Etc/GMT-8", "%Y-%m-%d")
    assert got.iloc[0] == pd.Timestamp("2018-08-22 16:00", tz="UTC")  # midnight GMT+8
