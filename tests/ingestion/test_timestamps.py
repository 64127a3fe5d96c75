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


def test_session_close_is_the_actual_close_from_the_exchange_calendar() -> None:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2013-01-01")
    days = ["2013-11-29", "2013-12-24", "2013-11-27", "2013-11-28", "2013-03-29"]
    got = session_close_utc(pd.Series(days), "%Y-%m-%d")
    assert got.iloc[0] == pd.Timestamp("2013-11-29 18:00", tz="UTC")  # early close 13:00 EST
    assert got.iloc[1] == cal.session_close(pd.Timestamp("2013-12-24"))
    assert got.iloc[2] == cal.session_close(pd.Timestamp("2013-11-27"))
    assert got.iloc[3:].isna().all()  # Thanksgiving, Good Friday: no session


def test_publication_rules() -> None:
    from ingestion.timestamps import eia_spot_known_utc, fed_monthly_known_utc, vix_close_utc

    # EIA: Friday 2019-10-11's price is published Tuesday (Monday 10-14 is Columbus Day)
    eia = eia_spot_known_utc(pd.Series(["2019-10-11", "2019-10-14", "2013-03-28"]), "%Y-%m-%d")
    assert eia.tolist()[:2] == [pd.Timestamp("2019-10-15 20:00", tz="UTC")] * 2
    # Thursday before Good Friday: published Friday morning, first session after is Monday
    assert eia.iloc[2] == pd.Timestamp("2013-04-01 20:00", tz="UTC")
    fed = fed_monthly_known_utc(pd.Series(["2010-09-01", "2023-12-01"]), "%Y-%m-%d")
    assert fed.iloc[0] == pd.Timestamp("2010-10-01 21:00", tz="UTC")  # G.5 of October 1, 2010
    assert fed.iloc[1] == pd.Timestamp("2024-01-02 22:00", tz="UTC")  # Jan 1 is a holiday
    vix = vix_close_utc(pd.Series(["2013-11-29", "2022-05-30"]), "%Y-%m-%d")
    assert vix.iloc[0] == pd.Timestamp("2013-11-29 18:15", tz="UTC")
    assert vix.iloc[1] == pd.Timestamp("2022-05-30 20:15", tz="UTC")  # Memorial Day: 16:15 EDT
