"""Minute-bar semantics on LEAN's real minute trade bars (stamped at bar end).

Oracles: pandas over the raw file (groupby of the regular-session bars) with the session times
taken from exchange_calendars directly (not finfeast.sessions), and pandas rolling statistics
for the annualisation.
"""

from __future__ import annotations

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest
from catalog_inputs import minute_bars

from transforms import OnlineFeatures, catalog, compute_features

RTOL = 1e-9


@pytest.fixture(scope="module")
def minutes(data_dir) -> pd.DataFrame:
    return minute_bars(data_dir).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def feats(minutes) -> pd.DataFrame:
    return compute_features(minutes, bar_frequency="1min")


def _regular_mask(bars: pd.DataFrame) -> pd.Series:
    """A bar (end stamp) is regular when open < end <= close of its New York date's session."""
    cal = xcals.get_calendar("XNYS", start="2008-01-01", end="2024-12-31")
    sched = cal.schedule
    day = bars["event_timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    day = day.dt.normalize()
    sched.index = pd.DatetimeIndex(sched.index).tz_localize(None)
    opens = day.map(sched["open"])
    closes = day.map(sched["close"])
    return (bars["event_timestamp"] > opens) & (bars["event_timestamp"] <= closes)


def test_vwap_session_is_the_regular_session_vwap(minutes, feats) -> None:
    regular = _regular_mask(minutes)
    assert (~regular).sum() > 1000 and regular.sum() > 5000  # extended hours really present
    local = minutes["event_timestamp"].dt.tz_convert("America/New_York")
    reg = minutes[regular]
    tp = (reg["high"] + reg["low"] + reg["close"]) / 3
    keys = [reg["symbol"], local[regular].dt.date]
    ref = (tp * reg["volume"]).groupby(keys).cumsum() / reg["volume"].groupby(keys).cumsum()
    np.testing.assert_allclose(feats.loc[regular, "vwap_session"], ref, rtol=RTOL)
    # extended-hours bars neither enter the VWAP nor get a value
    assert feats.loc[~regular, "vwap_session"].isna().all()
    # the first regular bar of a session ends at 09:31 New York; 16:00 bars are the last
    ends = local[regular].dt.strftime("%H:%M")
    assert ends.min() == "09:31" and ends.max() == "16:00"


def test_early_close_ends_the_regular_session_at_13_00(data_dir) -> None:
    """2015-12-24 closed at 13:00 (a published early close): GOOG's later bars that day (there
    are some, to 16:11) are extended hours."""
    bars = minute_bars(data_dir)
    goog = bars[bars["symbol"] == "GOOG"].reset_index(drop=True)
    local = goog["event_timestamp"].dt.tz_convert("America/New_York")
    eve = local.dt.strftime("%Y-%m-%d") == "2015-12-24"
    assert eve.sum() > 0
    got = compute_features(goog, bar_frequency="1min")
    late = eve & (local.dt.strftime("%H:%M") > "13:00")
    in_session = eve & ~late & (local.dt.strftime("%H:%M") > "09:30")
    assert late.sum() >= 10 and got.loc[late, "vwap_session"].isna().all()
    assert got.loc[in_session, "vwap_session"].notna().all() and in_session.sum() > 100
    cal = xcals.get_calendar("XNYS", start="2015-01-01", end="2015-12-31")
    close = cal.schedule.loc["2015-12-24", "close"]
    assert close.tz_convert("America/New_York").strftime("%H:%M") == "13:00"
    assert local[in_session].max() <= close


def test_minute_volatilities_are_annualised_for_minute_bars(minutes, feats) -> None:
    """rv_20 of 1-minute bars = std of 20 minute log returns x sqrt(252 x 390)."""
    per_year = 252 * 390
    lr = np.log(minutes["close"] / minutes.groupby("symbol")["close"].shift(1))
    ref = lr.groupby(minutes["symbol"]).transform(lambda x: x.rolling(20).std(ddof=1))
    np.testing.assert_allclose(feats["rv_20"], ref * np.sqrt(per_year), rtol=1e-7)
    hl = np.log(minutes["high"] / minutes["low"]) ** 2 / (4 * np.log(2))
    park = hl.groupby(minutes["symbol"]).transform(lambda x: x.rolling(20).mean())
    np.testing.assert_allclose(feats["parkinson_20"], np.sqrt(park * per_year), rtol=1e-7)
    daily_convention = compute_features(minutes)  # the same bars declared daily: sqrt(252)
    np.testing.assert_allclose(feats["rv_20"], daily_convention["rv_20"] * np.sqrt(390), rtol=1e-12)
    # only the annualised features change with the frequency (vwap_session aside)
    same = [
        f.name
        for f in catalog.bar_features()
        if f.name not in catalog.ANNUALISED and f.name != "vwap_session"
    ]
    pd.testing.assert_frame_equal(feats[same], daily_convention[same])


def test_stream_paths_use_the_same_minute_semantics(minutes, feats) -> None:
    """Wiring test: single-bar and micro-batch online paths with bar_frequency='1min' give the
    batch frame's values (one kernel, so this checks the plumbing, not the math)."""
    part = minutes[minutes["symbol"].isin(["SPY", "AAPL"])].reset_index(drop=True)
    batch = compute_features(part, bar_frequency="1min")
    online = OnlineFeatures(bar_frequency="1min")
    rows = [online.update(bar) for bar in part.to_dict("records")]
    single = pd.DataFrame(rows)
    micro = OnlineFeatures(bar_frequency="1min").update_many(part)
    for name in ("rv_20", "parkinson_20", "vwap_session", "is_month_end", "bdays_to_month_end"):
        np.testing.assert_allclose(single[name], batch[name], rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(micro[name], batch[name], rtol=RTOL, err_msg=name)
