"""Market-context family on real data: values checked independently, point in time, partitionable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from featstore_inputs import load_bars, load_fx_rates, load_listings, load_macro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finfeast.errors import FinfeastError
from transforms.context import (
    FEATURE_NAMES,
    compute_context_features,
    context_features,
    prepare_context,
)


@pytest.fixture(scope="module")
def inputs(data_dir) -> dict[str, pd.DataFrame]:
    return {
        "bars": load_bars(data_dir),
        "macro": load_macro(data_dir),
        "fx_rates": load_fx_rates(),
        "listings": load_listings(data_dir),
    }


@pytest.fixture(scope="module")
def full(inputs) -> pd.DataFrame:
    return compute_context_features(
        inputs["bars"], inputs["macro"], inputs["fx_rates"], inputs["listings"]
    )


def _one(full: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return full[full["symbol"] == symbol].set_index("event_timestamp")


def test_one_row_per_bar_and_every_feature_present(inputs, full) -> None:
    assert len(full) == len(inputs["bars"])
    assert list(full.columns) == ["symbol", "event_timestamp", *FEATURE_NAMES]
    # every feature carries real values somewhere in this slice (no silently empty family)
    assert full[list(FEATURE_NAMES)].notna().any().all()


def test_relative_return_and_beta_match_an_independent_computation(inputs, full) -> None:
    closes = inputs["bars"].pivot(index="event_timestamp", columns="symbol", values="close")
    r = closes / closes.shift(1) - 1.0
    xom = _one(full, "XOM")
    np.testing.assert_allclose(
        xom["ret_rel_spx_1"], (r["XOM"] - r["^GSPC"]).reindex(xom.index), rtol=1e-10, equal_nan=True
    )
    # beta / correlation over the last 60 bars, by numpy on a handful of real dates
    pair = pd.concat([r["XOM"], r["^GSPC"]], axis=1, keys=["x", "m"]).dropna()
    for end in (60, 200, 700, len(pair) - 1):
        window = pair.iloc[end - 59 : end + 1]
        cov = np.cov(window["x"], window["m"], ddof=1)
        at = window.index[-1]
        np.testing.assert_allclose(xom.loc[at, "beta_spx_60"], cov[0, 1] / cov[1, 1], rtol=1e-9)
        np.testing.assert_allclose(
            xom.loc[at, "corr_spx_60"], np.corrcoef(window["x"], window["m"])[0, 1], rtol=1e-9
        )
    # warm-up: the first 60 bars (59 returns + the missing first) are null, not 0
    assert xom["beta_spx_60"].iloc[:60].isna().all()
    assert xom["beta_spx_60"].iloc[60:].notna().all()


def _sector_at(listings: pd.DataFrame, bars: pd.DataFrame) -> pd.Series:
    """Each bar's sector known at its time, by pandas as-of on the raw-snapshot listings."""
    left = bars[["symbol", "event_timestamp"]].reset_index().sort_values("event_timestamp")
    right = listings[["symbol", "event_timestamp", "sector"]].sort_values("event_timestamp")
    got = pd.merge_asof(left, right, on="event_timestamp", by="symbol", direction="backward")
    return got.set_index("index")["sector"].reindex(bars.index)


def test_sector_relative_return_uses_the_sector_known_at_each_bar(inputs, full) -> None:
    bars = inputs["bars"].sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    bars["r1"] = bars.groupby("symbol")["close"].pct_change(fill_method=None)
    bars["sector"] = _sector_at(inputs["listings"], bars)
    grouped = bars.groupby(["sector", "event_timestamp"])["r1"]
    mean = grouped.transform("mean").where(grouped.transform("count") >= 3)
    expected = (bars["r1"] - mean).to_numpy()
    got = full.sort_values(["symbol", "event_timestamp"])["ret_rel_sector_1"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15, equal_nan=True)
    # Information Technology in this slice: AAPL, MSFT, and GOOGL once a snapshot lists GOOGL
    # (2014-07-28, as IT; today's list says Communication Services, a sector created in 2018)
    aapl = _one(full, "AAPL")["ret_rel_sector_1"]
    googl_listed = pd.Timestamp("2014-07-28T20:23:58Z")
    assert aapl[aapl.index < googl_listed].isna().all()
    assert aapl[aapl.index > googl_listed].notna().mean() > 0.99
    googl_2015 = _one(full, "GOOGL").loc["2015"]
    assert googl_2015["ret_rel_sector_1"].notna().all() and len(googl_2015) > 240
    # an index has no sector
    assert _one(full, "^GSPC")["ret_rel_sector_20"].isna().all()


def test_sp500_membership_as_known_at_each_bar(data_dir, inputs, full) -> None:
    """in_sp500 against the raw snapshot files: 1 when the latest snapshot known at the bar lists
    the symbol, 0 when it does not, null before the first snapshot (2012-12-27T20:17:58Z)."""
    from featstore_inputs import read_snapshot, snapshot_times

    snaps = snapshot_times(data_dir)
    first = snaps["known"].iloc[0]
    assert first == pd.Timestamp("2012-12-27T20:17:58Z")
    spx = _one(full, "^GSPC")["in_sp500"]
    assert spx[spx.index < first].isna().all() and (spx.index < first).sum() > 50
    assert (spx[spx.index >= first] == 0).all()  # the index itself is no constituent
    for when in ("2013-06-03", "2014-10-01", "2015-06-01", "2017-06-01"):
        t = pd.Timestamp(f"{when}T20:00:00Z")
        listed = read_snapshot(snaps[snaps["known"] <= t]["path"].iloc[-1])
        for sym in ("AAPL", "GOOGL", "APTV", "XOM"):
            rows = _one(full, sym)["in_sp500"]
            rows = rows[rows.index <= t]
            if len(rows):
                assert rows.iloc[-1] == float(sym in listed), (sym, when)
    # GOOGL is missing from the snapshot of 2014-12-07 (a Wikipedia edit): taken literally
    googl = _one(full, "GOOGL")["in_sp500"]
    assert (googl.loc["2015-01":"2015-08"] == 0).all() and (googl.loc["2016-03":] == 1).all()


def test_vix_stamped_after_the_close_is_seen_the_next_session(data_dir, full) -> None:
    raw = pd.read_csv(data_dir / "datasets" / "finance-vix" / "vix-daily.csv")
    raw["DATE"] = pd.to_datetime(raw["DATE"])
    vix_by_day = raw.set_index("DATE")["CLOSE"]
    msft = _one(full, "MSFT")
    day = msft.index.tz_convert("America/New_York").normalize().tz_localize(None)
    prev_vix = vix_by_day.asof(day - pd.Timedelta(days=1))
    # the 16:15 VIX close of day D is after the 16:00 bar of day D: the bar sees D-1's value
    np.testing.assert_allclose(msft["vix"].to_numpy(), prev_vix.to_numpy(), rtol=1e-12)
    assert not np.allclose(msft["vix"].to_numpy(), vix_by_day.reindex(day).to_numpy())


def test_a_daily_fx_cross_beats_a_monthly_direct_series(inputs, full, data_dir) -> None:
    monthly = pd.read_csv(data_dir / "datasets" / "exchange-rates" / "monthly.csv")
    japan = monthly[(monthly["Country"] == "Japan") & (monthly["Date"] >= "2012-01-01")]
    direct = pd.DataFrame(
        {
            "base": "USD",
            "quote": "JPY",
            "rate": japan["Exchange rate"].astype("float64").to_numpy(),
            "event_timestamp": pd.to_datetime(japan["Date"], utc=True).to_numpy(),
            "source": "fred_h10_monthly",
        }
    )
    assert len(direct) > 50
    fx = pd.concat([inputs["fx_rates"], direct], ignore_index=True)
    out = compute_context_features(inputs["bars"], inputs["macro"], fx, inputs["listings"])
    # the daily EUR cross (JPY per EUR / USD per EUR) is used, not the monthly direct series
    pd.testing.assert_series_equal(out["usdjpy_ret_1"], full["usdjpy_ret_1"])
    assert full["usdjpy_ret_1"].notna().mean() > 0.95


def test_missing_context_tables_give_nulls_not_zeros(inputs) -> None:
    out = compute_context_features(inputs["bars"])
    for name in ("vix", "wti_ret_1", "eurusd_ret_1", "ret_rel_sector_1"):
        assert out[name].isna().all(), name
    assert out["ret_rel_spx_1"].notna().any()  # the index is in bars, so this one still works


def test_any_subset_of_symbols_gives_the_same_rows(inputs, full) -> None:
    ctx = prepare_context(inputs["bars"], inputs["macro"], inputs["fx_rates"], inputs["listings"])
    part = inputs["bars"][inputs["bars"]["symbol"].isin(["JPM", "XOM"])]
    got = context_features(part, ctx).reset_index(drop=True)
    expected = full[full["symbol"].isin(["JPM", "XOM"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_bars_without_close_are_rejected(inputs) -> None:
    with pytest.raises(FinfeastError, match="close"):
        compute_context_features(inputs["bars"].drop(columns=["close"]))


def _rewrite_later_listings(listings: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Every listings row after t says something else: flipped membership, another sector."""
    out = listings.copy()
    later = out["event_timestamp"] > t
    out.loc[later, "in_sp500"] = ~out.loc[later, "in_sp500"].astype(bool)
    out.loc[later, "sector"] = "Energy"
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.floats(0.1, 0.95), noise=st.floats(0.5, 2.0))
def test_no_look_ahead_changing_everything_after_t_changes_nothing_at_or_before_t(
    inputs, full, cut, noise
) -> None:
    """Rewrite every bar, macro value and FX rate after t: no context feature at or before t moves."""
    times = np.sort(inputs["bars"]["event_timestamp"].unique())
    t = pd.Timestamp(times[int(cut * (len(times) - 1))])

    def scramble(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        df = df.copy()
        later = df["event_timestamp"] > t
        for col in cols:
            df.loc[later, col] = df.loc[later, col].to_numpy() * noise + 1.0
        return df

    changed = compute_context_features(
        scramble(inputs["bars"], ["open", "high", "low", "close"]),
        scramble(inputs["macro"], ["value"]),
        scramble(inputs["fx_rates"], ["rate"]),
        _rewrite_later_listings(inputs["listings"], t),
    )
    upto = full["event_timestamp"] <= t
    pd.testing.assert_frame_equal(changed[upto], full[upto], check_exact=True)
    after = full["event_timestamp"] > t
    if after.sum() > 100:  # the scramble really changed the future (the test can fail)
        assert not changed.loc[after, "ret_rel_spx_5"].equals(full.loc[after, "ret_rel_spx_5"])


def test_fb_and_twx_have_sector_features_in_2014_2017(data_dir, inputs) -> None:
    """Symbols absent from today's list (FB renamed, TWX acquired) get the sector known then."""
    import featstore_inputs

    raw = pd.read_csv(data_dir / "daily" / "all_stocks_5yr.csv.gz", usecols=["Name"])
    bars = load_bars(data_dir, tuple(raw["Name"].unique()))
    out = compute_context_features(bars, listings=inputs["listings"])
    for sym in ("FB", "TWX"):
        rows = _one(out, sym).loc["2014-02":"2017-12"]
        assert len(rows) > 900 and rows["ret_rel_sector_1"].notna().all(), sym
        assert (rows["in_sp500"] == 1).all(), sym
    # FB joined the index on 2013-12-23, but no snapshot listed it before 2014-01-19: unknown then
    fb = _one(out, "FB")
    assert fb.loc[:"2014-01-17", "ret_rel_sector_1"].isna().all()
    assert (fb.loc[:"2014-01-17", "in_sp500"] == 0).all()
    # one session checked against the raw snapshots: FB minus the mean of its sector that day
    day = pd.Timestamp("2016-05-02T20:00:00Z")
    snaps = featstore_inputs.snapshot_times(data_dir)
    known = snaps[snaps["known"] <= day]
    sector_of: dict[str, str] = {}
    for path in known["path"]:  # the latest sector each symbol was listed with, up to `day`
        sector_of.update({s: v for s, v in featstore_inputs.read_snapshot(path).items() if v})
    closes = bars.pivot(index="event_timestamp", columns="symbol", values="close")
    r = (closes / closes.shift(1) - 1.0).loc[closes.index > day].iloc[0]
    peers = [s for s in r.index if sector_of.get(s) == sector_of["FB"] and pd.notna(r[s])]
    got = fb.loc[r.name, "ret_rel_sector_1"]
    np.testing.assert_allclose(got, r["FB"] - r[peers].mean(), rtol=1e-9)
