"""Point-in-time truth of the ingested data, against oracles not built from the code under test:
the raw LEAN factor files read with the csv module and the data README §7 rules, the raw price
files, exchange-calendars called directly, and pandas' US federal holiday calendar.

Covers: corporate actions = the known events; one source and one basis per symbol; the
cross-vendor disagreements (AAPL 2017-08-01, AIG 2014-05-19) with both values; the stamp audit of
every offline table this package writes; the disclosure of the survivor universe, the 2018
basis and the simulated trading data.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar

from finfeast.offline import open_tables

NY = "America/New_York"
FACTORS = "corporate_actions/lean_factor_files"


@pytest.fixture(scope="module")
def cal():  # noqa: ANN201 - the exchange calendar itself, not finfeast.sessions
    return xcals.get_calendar("XNYS", start="1990-01-02")


def _factor_rows(data_dir: Path, symbol: str) -> list[tuple[str, float, float, float]]:
    with open(data_dir / FACTORS / f"{symbol}.csv", newline="") as fh:
        return [(r[0], float(r[1]), float(r[2]), float(r[3])) for r in csv.reader(fh) if r]


def _expected_events(data_dir: Path, symbol: str, cal) -> dict[str, tuple[float, float]]:
    """ex-date -> (split ratio, cash dividend), per data README §7: a factor change between rows
    i and i+1 is an event with ex-date = next trading day after row i's date."""
    rows = _factor_rows(data_dir, symbol)
    out = {}
    for (d, pf, sf, ref), (_, pf2, sf2, _) in zip(rows, rows[1:], strict=False):
        if (pf, sf) == (pf2, sf2):
            continue
        ex = cal.next_session(pd.Timestamp(d)).strftime("%Y-%m-%d")
        out[ex] = (sf2 / sf, (1 - pf / pf2) * ref)
    return out


def _actions(settings) -> pd.DataFrame:
    a = open_tables(settings).read("corporate_actions")
    a["ex"] = a["ex_date"].dt.strftime("%Y-%m-%d")
    return a


@pytest.mark.parametrize(
    ("symbol", "ex_date", "ratio"),
    [
        ("aapl", "2014-06-09", 7.0),  # 7:1 (README §7 and §1: 645.57 -> 92.69)
        ("aapl", "2020-08-31", 4.0),  # 4:1
        ("aig", "2009-07-01", 0.05),  # 1:20 reverse
        ("uso", "2020-04-29", 0.125),  # 1:8 reverse
    ],
)
def test_known_splits_from_the_factor_files(full_local, data_dir, cal, symbol, ex_date, ratio):
    settings, _ = full_local
    expected = _expected_events(data_dir, symbol, cal)
    assert expected[ex_date][0] == pytest.approx(ratio, rel=1e-5)  # the raw rows say so
    a = _actions(settings)
    row = a[(a["symbol"] == symbol.upper()) & (a["ex"] == ex_date)].iloc[0]
    assert row["split_ratio"] == ratio  # snapped to the exact fraction
    assert row["split_price_factor"] == pytest.approx(1 / ratio)
    assert row["cash_dividend"] == 0.0 and row["dividend_price_factor"] == 1.0
    assert row["source"] == "lean_actions"
    # knowledge time: the ex-date's session open, from the calendar directly
    assert row["event_timestamp"] == cal.session_open(pd.Timestamp(ex_date))


def test_every_factor_change_is_one_action(full_local, data_dir, cal) -> None:
    settings, _ = full_local
    a = _actions(settings)
    lean = a[a["source"] == "lean_actions"]
    for path in sorted((data_dir / FACTORS).glob("*.csv")):
        expected = _expected_events(data_dir, path.stem, cal)
        mine = lean[lean["symbol"] == path.stem.upper()].set_index("ex")
        assert set(mine.index) == set(expected), path.stem
        for ex, (ratio, dividend) in expected.items():
            assert mine.loc[ex, "split_ratio"] == pytest.approx(ratio, rel=1e-5)
            assert mine.loc[ex, "cash_dividend"] == pytest.approx(dividend, rel=1e-9, abs=1e-12)
    # a known dividend: AAPL's $2.65 of 2012-08-09 (Apple's first dividend since 1995)
    aapl = lean[lean["symbol"] == "AAPL"].set_index("ex")
    assert aapl.loc["2012-08-09", "cash_dividend"] == pytest.approx(2.65, abs=0.01)


def _bars(settings) -> pd.DataFrame:
    return open_tables(settings).read("bars")


def test_no_symbol_has_two_sources_or_two_bases(full_local) -> None:
    settings, _ = full_local
    bars = _bars(settings)
    per = bars.groupby("symbol").agg(
        sources=("source", "nunique"), bases=("price_basis", "nunique")
    )
    assert (per["sources"] == 1).all() and (per["bases"] == 1).all()
    basis = bars.groupby("source")["price_basis"].unique().map(set).to_dict()
    assert basis["lean_daily"] == {"as_traded"}
    assert basis["arch_indices"] == {"as_traded"}
    assert basis["stocks_5yr"] == {"split_adjusted_as_of:2018-02-07"}
    # the 12 LEAN symbols are LEAN's for the whole series (GOOG = class C since 2014-04-03)
    owner = bars.groupby("symbol")["source"].first()
    lean = {"AAPL", "AIG", "BAC", "BNO", "EEM", "GOOG", "GOOGL", "IBM", "IWM", "QQQ", "SPY", "USO"}
    assert {s for s, o in owner.items() if o == "lean_daily"} == lean
    googl = bars[bars["symbol"] == "GOOGL"]["event_timestamp"]
    assert googl.min() < pd.Timestamp("2005-01-01", tz="UTC")  # class A history from LEAN `goog`
    goog = bars[bars["symbol"] == "GOOG"]["event_timestamp"]
    assert goog.min().tz_convert(NY).date().isoformat() == "2014-04-03"


def _raw_close(path: Path, sym_col: str, symbol: str, day: str) -> float:
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if row[sym_col].upper() == symbol and row["date"] == day:
                return float(row["close"])
    raise KeyError((symbol, day))


@pytest.mark.parametrize(("symbol", "day"), [("AAPL", "2017-08-01"), ("AIG", "2014-05-19")])
def test_cross_vendor_disagreements_are_reported(full_local, data_dir, symbol, day) -> None:
    settings, summary = full_local
    lean = _raw_close(data_dir / "daily/lean_equity_daily_bars.csv.gz", "symbol", symbol, day)
    kaggle = _raw_close(data_dir / "daily/all_stocks_5yr.csv.gz", "Name", symbol, day)
    assert abs(kaggle / lean - 1) > 0.05  # README: 158.59 vs 150.05, 55.69 vs 52.71
    d = open_tables(settings).read("vendor_disagreements")
    d["day"] = d["event_timestamp"].dt.tz_convert(NY).dt.strftime("%Y-%m-%d")
    row = d[(d["symbol"] == symbol) & (d["day"] == day)].iloc[0]
    assert (row["winner_source"], row["loser_source"]) == ("lean_daily", "stocks_5yr")
    assert row["winner_value"] == lean and row["loser_value"] == kaggle
    assert row["rel_diff"] > row["tolerance"] == 0.01
    assert any(x["symbol"] == symbol and x["date"] == day for x in summary.disagreements)
    # the superseded row keeps both values
    q = open_tables(settings).read("quarantine")
    sup = q[(q["source"] == "stocks_5yr") & (q["rule"] == "superseded")]
    hit = [
        json.loads(det)
        for det, r in zip(sup["detail"], sup["row"], strict=True)
        if json.loads(r)["Name"] == symbol and json.loads(r)["date"] == day
    ]
    assert hit[0]["winner_close"] == lean and hit[0]["loser_close"] == kaggle


def test_split_adjusted_rows_are_compared_on_the_as_traded_basis(full_local, data_dir) -> None:
    """AAPL 2013-02-08: all_stocks_5yr 67.8542 x 7 (the 2014 split) = LEAN raw 474.98."""
    settings, _ = full_local
    lean = _raw_close(
        data_dir / "daily/lean_equity_daily_bars.csv.gz", "symbol", "AAPL", "2013-02-08"
    )
    kaggle = _raw_close(data_dir / "daily/all_stocks_5yr.csv.gz", "Name", "AAPL", "2013-02-08")
    q = open_tables(settings).read("quarantine")
    sup = q[(q["source"] == "stocks_5yr") & (q["rule"] == "superseded")]
    detail = next(
        json.loads(det)
        for det, r in zip(sup["detail"], sup["row"], strict=True)
        if json.loads(r)["Name"] == "AAPL" and json.loads(r)["date"] == "2013-02-08"
    )
    assert detail["loser_close_as_winner_basis"] == pytest.approx(kaggle * 7, rel=1e-9)
    assert detail["loser_close_as_winner_basis"] == pytest.approx(lean, rel=1e-3)
    d = open_tables(settings).read("vendor_disagreements")
    assert not ((d["symbol"] == "AAPL") & (d["loser_value"] == kaggle)).any()


# ---------------------------------------------------------------- stamp audit (every table)


def _lean_raw(data_dir: Path) -> pd.DataFrame:
    raw = pd.read_csv(data_dir / "daily/lean_equity_daily_bars.csv.gz", dtype={"date": str})
    raw["symbol"] = raw["symbol"].str.lower()
    return raw


def test_stamp_audit_bars(full_local, data_dir, cal) -> None:
    settings, _ = full_local
    bars = _bars(settings)
    closes = cal.schedule["close"]
    closes.index = closes.index.strftime("%Y-%m-%d")
    day = bars["event_timestamp"].dt.tz_convert(NY).dt.strftime("%Y-%m-%d")
    # every bar: at its session's close, never before it
    assert (bars["event_timestamp"].to_numpy() == closes.reindex(day).to_numpy()).all()
    # per source, the multiset of stamps equals the raw file's dates at their closes
    lean = _lean_raw(data_dir)
    expected = Counter(closes.reindex(lean["date"]).tolist())
    assert Counter(bars.loc[bars["source"] == "lean_daily", "event_timestamp"].tolist()) == expected
    # the early close of 2013-11-29 (13:00 New York = 18:00 UTC)
    aapl = bars[(bars["symbol"] == "AAPL")].set_index("event_timestamp")["close"]
    assert pd.Timestamp("2013-11-29 18:00", tz="UTC") in aapl.index
    raw = lean[(lean["symbol"] == "aapl") & (lean["date"] == "2013-11-29")]["close"].iloc[0]
    assert aapl[pd.Timestamp("2013-11-29 18:00", tz="UTC")] == raw


def test_stamp_audit_corporate_actions(full_local, cal) -> None:
    settings, _ = full_local
    a = _actions(settings)
    opens = cal.schedule["open"]
    opens.index = opens.index.strftime("%Y-%m-%d")
    assert (a["event_timestamp"].to_numpy() == opens.reindex(a["ex"]).to_numpy()).all()
    assert (a["event_timestamp"] >= a["ex_date"]).all()


def _next_business_day(day: pd.Timestamp) -> pd.Timestamp:
    holidays = set(USFederalHolidayCalendar().holidays("1970-01-01", "2030-12-31"))
    d = day + pd.Timedelta(days=1)
    while d.weekday() >= 5 or d in holidays:
        d += pd.Timedelta(days=1)
    return d


def test_stamp_audit_macro(full_local, data_dir, cal) -> None:
    settings, _ = full_local
    macro = open_tables(settings).read("macro")
    wti = macro[macro["series"] == "WTI"].set_index("event_timestamp")["value"]
    raw = pd.read_csv(data_dir / "datasets/oil-prices/wti-daily.csv")
    for day, price in zip(raw["Date"].iloc[-400:], raw["Price"].iloc[-400:], strict=True):
        d = pd.Timestamp(day)
        publish = _next_business_day(d)
        session = publish if cal.is_session(publish) else cal.date_to_session(publish, "next")
        expected = cal.session_close(session)
        same_day_close = pd.Timestamp(f"{day} 16:00", tz=NY)
        assert expected > same_day_close
        assert expected in wti.index, day
        later = raw["Date"][raw["Date"] > day]
        if later.empty or _next_business_day(pd.Timestamp(later.iloc[0])) != publish:
            assert wti[expected] == price, day  # not shadowed by a later date published with it
    # WTI of 2020-04-20 (-36.98) is not visible to that day's close; known 2020-04-21 16:00 EDT
    assert wti[pd.Timestamp("2020-04-21 20:00", tz="UTC")] == -36.98
    assert not (wti == -36.98)[wti.index <= pd.Timestamp("2020-04-20 20:00", tz="UTC")].any()
    # VIX: the Cboe close, 15 min after the XNYS close (13:15 New York on 2013-11-29)
    vix = macro[macro["series"] == "VIX"].set_index("event_timestamp")["value"]
    assert pd.Timestamp("2013-11-29 18:15", tz="UTC") in vix.index
    assert pd.Timestamp("2013-11-27 21:15", tz="UTC") in vix.index


def test_stamp_audit_fx(full_local, data_dir) -> None:
    settings, _ = full_local
    fx = open_tables(settings).read("fx_rates")
    ecb = fx[fx["source"] == "fx:ecb"]["event_timestamp"].drop_duplicates()
    local = ecb.dt.tz_convert("Europe/Berlin")
    assert ((local.dt.hour == 17) & (local.dt.minute == 0)).all()
    monthly = fx[fx["source"] == "fx:fred_h10_monthly"]
    raw = pd.read_csv(data_dir / "datasets/exchange-rates/monthly.csv")
    expected = set()
    for month in raw["Date"].unique():
        first = (pd.Timestamp(month) + pd.offsets.MonthBegin(1)) - pd.Timedelta(days=1)
        release = _next_business_day(first)  # first business day of the next month
        expected.add(pd.Timestamp(f"{release.date()} 17:00", tz=NY).tz_convert("UTC"))
    assert set(monthly["event_timestamp"]) == expected
    # January 2024's average is not known before February's first business day
    assert (monthly["event_timestamp"] > pd.Timestamp("2024-02-01", tz="UTC")).any()
    assert not (
        (monthly["rate"] == 0.9175)
        & (monthly["event_timestamp"] < pd.Timestamp("2024-02-01 22:00", tz="UTC"))
    ).any()


# ---------------------------------------------------------------- disclosure


def test_quality_report_discloses_survivors_basis_and_simulation(full_local) -> None:
    settings, summary = full_local
    report = json.loads((settings.reports_dir / "quality_report.json").read_text())
    by = {s["name"]: s for s in report["sources"]}
    assert by["stocks_5yr"]["price_basis"] == "split_adjusted_as_of:2018-02-07"
    assert any("survivor" in c for c in by["stocks_5yr"]["caveats"])
    assert by["trading"]["simulated"] is True
    assert not any(s["simulated"] for n, s in by.items() if n != "trading")
    assert by["lean_daily"]["price_basis"] == "as_traded"
    rows = {r["source"]: r for r in summary.to_rows()}
    assert "survivor" in rows["stocks_5yr"]["note"] and "SIMULATED" in rows["trading"]["note"]
    accounts = open_tables(settings).read("accounts")
    assert accounts["simulated"].all() and set(accounts["source"]) == {"trading:simulated"}


# ---------------------------------------------------------------- series-continuity guard


def test_source_switch_guard_catches_the_old_splice(full_local, data_dir) -> None:
    """The pre-fix splice (LEAN raw AAPL, then all_stocks_5yr's split-adjusted AAPL) is caught
    at 2013-02-08; a switch across the 7:1 split on 2014-06-09 is explained and passes."""
    from ingestion.continuity import unexplained_switches

    settings, _ = full_local
    actions = open_tables(settings).read("corporate_actions")
    lean = _lean_raw(data_dir)
    lean = lean[lean["symbol"] == "aapl"]
    kaggle = pd.read_csv(data_dir / "daily/all_stocks_5yr.csv.gz")
    kaggle = kaggle[kaggle["Name"] == "AAPL"]

    def frame(rows: pd.DataFrame, source: str, basis: str) -> pd.DataFrame:
        ts = pd.to_datetime(rows["date"]).dt.tz_localize(NY) + pd.Timedelta(hours=16)
        return pd.DataFrame(
            {"symbol": "AAPL", "event_timestamp": ts.dt.tz_convert("UTC").to_numpy(),
             "close": rows["close"].to_numpy(), "source": source, "price_basis": basis}
        )  # fmt: skip

    spliced = pd.concat(
        [
            frame(lean[lean["date"] < "2013-02-08"], "lean_daily", "as_traded"),
            frame(kaggle[kaggle["date"] <= "2013-06-28"], "stocks_5yr", "split_adjusted_as_of:2018-02-07"),
        ],
        ignore_index=True,
    )  # fmt: skip
    mask, details = unexplained_switches(spliced, actions)
    flagged = spliced.loc[mask, "event_timestamp"].dt.tz_convert(NY).dt.strftime("%Y-%m-%d")
    assert flagged.min() == "2013-02-08" and mask.sum() == (kaggle["date"] <= "2013-06-28").sum()
    assert "unexplained jump" in details[0]
    across_split = pd.concat(
        [
            frame(lean[(lean["date"] >= "2014-05-01") & (lean["date"] < "2014-06-09")], "a", "as_traded"),
            frame(lean[(lean["date"] >= "2014-06-09") & (lean["date"] < "2014-07-01")], "b", "as_traded"),
        ],
        ignore_index=True,
    )  # fmt: skip
    assert not unexplained_switches(across_split, actions)[0].any()
    assert unexplained_switches(across_split, None)[0].any()  # without the action: a -86% jump


def test_a_later_higher_ranked_source_takes_the_whole_series(data_dir, settings_factory, tmp_path):
    """Stored all_stocks_5yr AAPL rows, then a LEAN run: the stored rows are removed (purged),
    so the stored series is still one source; AAL stays all_stocks_5yr's."""
    from dataclasses import replace

    from ingestion_data import linked_data_dir

    from ingestion import run_ingest

    rel = "daily/all_stocks_5yr.csv.gz"
    with gzip.open(data_dir / rel, "rt") as fh:
        lines = fh.read().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.rsplit(",", 1)[1] in ("AAPL", "AAL")]
    small = linked_data_dir(
        data_dir, tmp_path / "d", {rel: gzip.compress(("\n".join(kept) + "\n").encode())}
    )
    settings = replace(settings_factory("local", "purge"), data_dir=small)
    first = run_ingest(settings, sources=["stocks_5yr"], progress=False)
    n_aapl = sum(1 for ln in kept[1:] if ln.endswith(",AAPL"))
    assert first.source("stocks_5yr").rows_loaded == len(kept) - 1
    second = run_ingest(settings, sources=["lean_daily", "lean_actions"], progress=False)
    assert second.writes["bars"]["purged"] == n_aapl
    bars = open_tables(settings).read("bars")
    owner = bars.groupby("symbol")["source"].unique().map(set)
    assert owner["AAPL"] == {"lean_daily"} and owner["AAL"] == {"stocks_5yr"}
    # and a later stocks_5yr-only run cannot take AAPL back: its rows are superseded, compared
    # on the as-traded basis with the stored actions
    third = run_ingest(settings, sources=["stocks_5yr"], progress=False)
    assert third.source("stocks_5yr").rules.get("superseded") == n_aapl
    assert {r["symbol"] for r in third.disagreements} == {"AAPL"}
    assert set(open_tables(settings).read("bars").groupby("symbol")["source"].nunique()) == {1}
