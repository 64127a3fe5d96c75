"""The catalog contract and the features TA-Lib does not define, against independent formulas.

Independent references are pandas/numpy/scipy one-liners over real bars of several symbols: they
share no code with the kernels, so a wrong window, seed or convention shows up as a mismatch.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from catalog_inputs import SYMBOLS, daily_bars
from scipy.stats import skew

from transforms import InvalidBarsError, catalog, compute_features

RTOL = 1e-9
ANNUAL = np.sqrt(252)


# --- contract ----------------------------------------------------------------------------------
def test_catalog_has_six_plus_bar_families_and_a_hundred_plus_features() -> None:
    bar_families = [f for f in catalog.FAMILIES.values() if f.kind == "bar"]
    assert len(bar_families) >= 6
    assert len(catalog.bar_features()) >= 100
    assert len(catalog.all_features()) == len(catalog.bar_features()) + len(
        catalog.context_features()
    )


def test_names_are_unique_snake_case_and_documented() -> None:
    names = [f.name for f in catalog.all_features()]
    assert len(names) == len(set(names))
    for fam in catalog.FAMILIES.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", fam.name)
        assert fam.description and fam.features and fam.source_tables
        assert fam.kind in ("bar", "context") and fam.version >= 1
        for f in fam.features:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
            assert f.family == fam.name and f.dtype in ("float64", "int64")
            assert f.description and f.convention, f.name


def test_starter_and_architecture_names_exist() -> None:
    for name in (
        "ret_1", "sma_20", "ema_12", "rsi_14", "atr_14", "macd_12_26_9", "macd_signal_12_26_9",
        "macd_hist_12_26_9", "bb_upper_20_2", "obv", "stoch_k_14_3", "vwap_20",
    ):  # fmt: skip
        assert catalog.feature(name).name == name
    assert catalog.family_of("rsi_14") == "oscillators"
    with pytest.raises(KeyError, match="unknown feature"):
        catalog.feature("sma_13")


def test_code_hash_is_lineage_of_the_defining_code() -> None:
    fam = catalog.FAMILIES["trend"]
    assert re.fullmatch(r"[0-9a-f]{12}", fam.code_hash)
    again = catalog.FamilySpec(
        **{k: getattr(fam, k) for k in catalog.FamilySpec.__dataclass_fields__}
    )
    assert again.code_hash == fam.code_hash  # deterministic
    other_code = catalog.FamilySpec(
        **{
            **{k: getattr(fam, k) for k in catalog.FamilySpec.__dataclass_fields__},
            "module": "transforms.families.volume",
        }
    )
    assert other_code.code_hash != fam.code_hash
    assert len({f.code_hash for f in catalog.FAMILIES.values()}) == len(catalog.FAMILIES)


def test_register_family_refuses_clashes() -> None:
    spec = catalog.FeatureSpec("sma_20", "dup", "float64", "d", "c")
    fam = catalog.FamilySpec("dup", 1, "d", "context", (spec,), ("bars",))
    with pytest.raises(ValueError, match="redefines"):
        catalog.register_family(fam)
    with pytest.raises(ValueError, match="already registered"):
        catalog.register_family(catalog.FAMILIES["trend"])
    assert "dup" not in catalog.FAMILIES


def test_importing_the_catalog_and_package_stays_cheap() -> None:
    code = (
        "import sys; import transforms; assert 'numba' not in sys.modules and "
        "'pandas' not in sys.modules; import transforms.catalog; "
        "assert 'numba' not in sys.modules; print(len(transforms.catalog.bar_features()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(catalog.bar_features())


# --- compute_features output ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars(data_dir) -> pd.DataFrame:
    return daily_bars(data_dir, SYMBOLS)


@pytest.fixture(scope="module")
def feats(bars) -> pd.DataFrame:
    return compute_features(bars)


def test_output_shape_order_and_dtypes(bars, feats) -> None:
    names = [f.name for f in catalog.bar_features()]
    assert list(feats.columns) == ["symbol", "event_timestamp", *names]
    assert len(feats) == len(bars)
    keys = feats[["symbol", "event_timestamp"]]
    assert keys.equals(keys.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True))
    for spec in catalog.bar_features():
        assert feats[spec.name].dtype == spec.dtype, spec.name
    assert str(feats["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_row_order_of_the_input_does_not_matter(bars, feats) -> None:
    shuffled = compute_features(bars.sample(frac=1.0, random_state=11))
    pd.testing.assert_frame_equal(shuffled, feats, check_exact=True)


def test_warm_up_is_null_never_zero_and_every_feature_gets_values(feats) -> None:
    aapl = feats[feats["symbol"] == "AAPL"].reset_index(drop=True)
    assert aapl["sma_200"].iloc[:199].isna().all() and aapl["sma_200"].iloc[199:].notna().all()
    assert aapl["mom_252_21"].iloc[:252].isna().all() and aapl["mom_252_21"].iloc[252] != 0
    assert aapl["ret_1"].iloc[:1].isna().all() and aapl["lr_skew_60"].iloc[:60].isna().all()
    for spec in catalog.bar_features():
        assert aapl[spec.name].notna().any(), spec.name
        assert aapl[spec.name].nunique() > 1, spec.name  # not a constant placeholder


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("close", np.nan, "close not a positive finite number"),
        ("open", 0.0, "open not a positive finite number"),
        ("volume", -1.0, "volume negative"),
        ("high", np.inf, "high not a positive finite number"),
    ],
)
def test_unusable_bars_are_rejected_with_a_reason(bars, column, value, reason) -> None:
    bad = bars.copy()
    bad.loc[5, column] = value
    with pytest.raises(InvalidBarsError) as err:
        compute_features(bad)
    assert err.value.problems["reason"].tolist() == [reason]
    assert err.value.problems["symbol"].tolist() == [bad.loc[5, "symbol"]]


def test_duplicates_and_missing_columns_are_rejected(bars) -> None:
    with pytest.raises(InvalidBarsError, match="duplicate"):
        compute_features(pd.concat([bars, bars.iloc[[10]]]))
    with pytest.raises(InvalidBarsError, match="lack required columns"):
        compute_features(bars.drop(columns=["volume"]))


def test_family_subset_returns_only_those_families(bars) -> None:
    part = compute_features(bars, families=["trend", "calendar"])
    expected = [f.name for f in catalog.bar_features() if f.family in ("trend", "calendar")]
    assert list(part.columns) == ["symbol", "event_timestamp", *expected]
    with pytest.raises(ValueError, match="unknown bar families"):
        compute_features(bars, families=["nope"])


# --- independent references for the features TA-Lib does not define ------------------------------
def _per_symbol(bars: pd.DataFrame):
    for symbol, grp in bars.sort_values("event_timestamp").groupby("symbol"):
        yield symbol, grp.reset_index(drop=True)


def _rolling_skew(x: pd.Series, n: int) -> pd.Series:
    """scipy's bias-corrected skew of every full window (vectorised over windows)."""
    out = np.full(len(x), np.nan)
    values = x.to_numpy()[1:]  # the first log return does not exist
    if len(values) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(values, n)
        out[n:] = skew(windows, axis=1, bias=False)
    return pd.Series(out)


def _references(g: pd.DataFrame) -> dict[str, pd.Series]:
    c, o, h, low, v = g["close"], g["open"], g["high"], g["low"], g["volume"]
    lr = np.log(c / c.shift(1))
    tp = (h + low + c) / 3
    ref: dict[str, pd.Series] = {}
    for n in (1, 5, 10, 20, 60):
        ref[f"ret_{n}"] = c / c.shift(n) - 1
    for n in (1, 5, 20):
        ref[f"log_ret_{n}"] = np.log(c / c.shift(n))
    ref["mom_252_21"] = c.shift(21) / c.shift(252) - 1
    ref["gap_ret"] = o / c.shift(1) - 1
    ref["intraday_ret"] = c / o - 1
    ref["px_sma_ratio_20"] = c / c.rolling(20).mean()
    ref["sma_ratio_5_20"] = c.rolling(5).mean() / c.rolling(20).mean()
    ref["sma_ratio_50_200"] = c.rolling(50).mean() / c.rolling(200).mean()
    for n in (5, 20, 60):
        ref[f"rv_{n}"] = lr.rolling(n).std(ddof=1) * ANNUAL
    for n in (10, 20, 60):
        win = lr.rolling(n)
        ref[f"lr_mean_{n}"] = win.mean()
        ref[f"lr_std_{n}"] = win.std(ddof=1)
        ref[f"lr_min_{n}"] = win.min()
        ref[f"lr_max_{n}"] = win.max()
        ref[f"lr_z_{n}"] = (lr - win.mean()) / win.std(ddof=1)
        ref[f"lr_skew_{n}"] = _rolling_skew(lr, n)
    for n in (20, 50, 200):
        ref[f"close_z_{n}"] = (c - c.rolling(n).mean()) / c.rolling(n).std(ddof=1)
    hl = np.log(h / low)
    co = np.log(c / o)
    ref["parkinson_20"] = np.sqrt((hl**2).rolling(20).mean() / (4 * np.log(2)) * 252)
    gk = (0.5 * hl**2 - (2 * np.log(2) - 1) * co**2).rolling(20).mean()
    ref["garman_klass_20"] = np.sqrt(gk.clip(lower=0) * 252)
    rs = np.log(h / c) * np.log(h / o) + np.log(low / c) * np.log(low / o)
    ref["rogers_satchell_20"] = np.sqrt(rs.rolling(20).mean().clip(lower=0) * 252)
    ref["hl_range"] = (h - low) / c
    for n in (5, 20, 50):
        ref[f"vol_ratio_{n}"] = v / v.rolling(n).mean()
    for n in (5, 20):
        ref[f"vwap_{n}"] = (tp * v).rolling(n).sum() / v.rolling(n).sum()
    ref["px_vwap_ratio_20"] = c / ref["vwap_20"]
    ref["vwap_session"] = tp.where(v > 0)  # one daily bar per session
    ref["log_volume"] = np.log1p(v)
    ref["dollar_vol_20"] = (c * v).rolling(20).mean()
    ref["vol_z_20"] = (v - v.rolling(20).mean()) / v.rolling(20).std(ddof=1)
    ref["clv"] = ((c - low) - (h - c)) / (h - low)
    return ref


def test_non_talib_features_match_independent_formulas(bars, feats) -> None:
    checked = 0
    for symbol, g in _per_symbol(bars):
        got = feats[feats["symbol"] == symbol].reset_index(drop=True)
        for name, ref in _references(g).items():
            ref = ref.to_numpy(dtype=float)
            mine = got[name].to_numpy(dtype=float)
            np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref), err_msg=f"{symbol} {name}")
            ok = ~np.isnan(ref)
            if not ok.any():
                continue  # short listing: the window never fills
            scale = np.maximum(np.abs(ref[ok]), np.abs(ref[ok]).mean())
            rel = np.abs(mine[ok] - ref[ok]) / scale
            assert rel.max() <= RTOL, f"{symbol} {name}: {rel.max():.2e}"
            checked += int(ok.sum())
    assert checked > 100_000


def test_interactions_are_their_stated_formulas(feats) -> None:
    f = feats
    expected = {
        "ret_20_vol_adj": f["ret_20"] / (f["lr_std_20"] * np.sqrt(20)),
        "rv_ratio_5_60": f["rv_5"] / f["rv_60"],
        "ret_1_x_vol_ratio_20": f["ret_1"] * f["vol_ratio_20"],
        "sma_spread_50_200_atr": (f["sma_50"] - f["sma_200"]) / f["atr_14"],
        "bb_kc_squeeze_20": (f["bb_upper_20_2"] - f["bb_lower_20_2"])
        / (f["kc_upper_20_2"] - f["kc_lower_20_2"]),
    }
    for name, ref in expected.items():
        np.testing.assert_allclose(f[name], ref, rtol=RTOL, err_msg=name)
        assert f[name].notna().sum() > 5000


def test_move_in_atr_units(bars, feats) -> None:
    for symbol, g in _per_symbol(bars):
        got = feats[feats["symbol"] == symbol].reset_index(drop=True)
        ref = (g["close"] - g["close"].shift(1)) / got["atr_14"]
        np.testing.assert_allclose(got["move_atr_14"], ref, rtol=RTOL, err_msg=symbol)


def _xnys_sessions() -> pd.DatetimeIndex:
    """XNYS sessions straight from exchange_calendars (the published schedule), not our module."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2012-01-01", end="2019-12-31")
    return pd.DatetimeIndex(cal.sessions).tz_localize(None).normalize()


def test_calendar_matches_pandas_and_the_xnys_schedule(feats) -> None:
    local = feats["event_timestamp"].dt.tz_convert("America/New_York")
    day = local.dt.tz_localize(None).dt.normalize()
    sessions = pd.Series(_xnys_sessions())
    month = sessions.dt.to_period("M")
    last_of_month = set(sessions.groupby(month).max())
    first_of_month = set(sessions.groupby(month).min())
    left = sessions.groupby(month).cumcount(ascending=False)  # sessions after it in its month
    left_by_day = dict(zip(sessions, left, strict=True))
    expected = {
        "day_of_week": local.dt.dayofweek,
        "day_of_month": local.dt.day,
        "day_of_year": local.dt.dayofyear,
        "week_of_year": local.dt.isocalendar().week.astype("int64"),
        "month": local.dt.month,
        "quarter": local.dt.quarter,
        "is_month_end": day.isin(last_of_month).astype("int64"),
        "is_month_start": day.isin(first_of_month).astype("int64"),
        "is_quarter_end": (day.isin(last_of_month) & (local.dt.month % 3 == 0)).astype("int64"),
        "is_year_end": (day.isin(last_of_month) & (local.dt.month == 12)).astype("int64"),
        "bdays_to_month_end": day.map(left_by_day),
    }
    assert day.isin(set(sessions)).all()  # every daily bar is on a session
    for name, ref in expected.items():
        np.testing.assert_array_equal(feats[name].to_numpy(), ref.to_numpy(), err_msg=name)
    assert feats["is_month_end"].sum() > 100 and feats["is_year_end"].sum() > 10


def test_good_friday_month_ends_from_the_published_schedule() -> None:
    """Good Friday 2013-03-29 and 2018-03-30 are NYSE holidays (published schedule, checked here
    against exchange_calendars): the Thursdays before are the last sessions of March/Q1."""
    from transforms.families.calendar import calendar_row, code_of_date

    sessions = _xnys_sessions()
    for holiday in ("2013-03-29", "2018-03-30"):
        assert pd.Timestamp(holiday) not in sessions and pd.Timestamp(holiday).dayofweek == 4
    assert calendar_row(code_of_date("2013-03-28"))["is_quarter_end"] == 1
    assert calendar_row(code_of_date("2013-03-28"))["bdays_to_month_end"] == 0
    assert calendar_row(code_of_date("2018-03-29"))["bdays_to_month_end"] == 0
    assert calendar_row(code_of_date("2018-03-29"))["is_month_end"] == 1
    assert calendar_row(code_of_date("2018-03-28"))["bdays_to_month_end"] == 1
    # 2018-01-02 is the first session of 2018 (New Year's Day a holiday)
    assert calendar_row(code_of_date("2018-01-02"))["is_month_start"] == 1
    assert calendar_row(code_of_date("2017-12-29"))["is_year_end"] == 1


def test_good_friday_in_batch_features_of_real_bars(data_dir) -> None:
    bars = daily_bars(data_dir, ("AAPL",))
    got = compute_features(bars).set_index("event_timestamp")
    at = got.index.tz_convert("America/New_York").strftime("%Y-%m-%d")
    assert got.loc[at == "2013-03-28", "is_quarter_end"].item() == 1
    assert got.loc[at == "2018-01-31", "is_month_end"].item() == 1
    assert "2013-03-29" not in set(at)  # no bar on the holiday itself


def test_calendar_edge_dates() -> None:
    from transforms.families.calendar import calendar_row, code_of_date

    friday_before_weekend_month_end = calendar_row(code_of_date("2017-09-29"))  # Sep 30: Sat
    assert friday_before_weekend_month_end["is_quarter_end"] == 1
    assert calendar_row(code_of_date("2016-01-01"))["week_of_year"] == 53  # ISO week of 2015
    assert calendar_row(code_of_date("2018-12-31"))["week_of_year"] == 1  # ISO week of 2019
    assert calendar_row(code_of_date("2017-07-03"))["is_month_start"] == 1  # Jul 1 was a Sat
    # outside the published schedule the session counts are unknown, not guessed
    assert calendar_row(code_of_date("1980-06-30"))["bdays_to_month_end"] == -1
    assert calendar_row(code_of_date("1980-06-30"))["is_month_end"] == 0


def test_timestamps_keep_their_unit_and_naive_means_utc(bars) -> None:
    small = bars[bars["symbol"].isin(["AAPL", "F"])].head(300)
    base = compute_features(small)
    micro = small.assign(event_timestamp=small["event_timestamp"].astype("datetime64[us, UTC]"))
    got = compute_features(micro)
    assert str(got["event_timestamp"].dtype) == "datetime64[us, UTC]"  # keys equal the input's
    pd.testing.assert_frame_equal(
        got.drop(columns="event_timestamp"), base.drop(columns="event_timestamp")
    )
    naive = small.assign(event_timestamp=small["event_timestamp"].dt.tz_localize(None))
    pd.testing.assert_frame_equal(compute_features(naive), base)
    text = small.assign(event_timestamp=small["event_timestamp"].astype(str))
    pd.testing.assert_frame_equal(compute_features(text), base)
