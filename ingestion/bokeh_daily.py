"""Source `bokeh_daily`: AAPL, FB, GOOGL (class A), IBM, MSFT daily OHLCV 2000-03-01 .. 2013-03-01
-> `bars`, and their splits and cash dividends -> `corporate_actions`.

Why: it is real daily data that ships in a PyPI package (`bokeh-sampledata`, in pyproject), so a
fresh clone with NO data directory still ingests real prices and real corporate actions.

Provenance: `bokeh_sampledata/_data/stocks.csv.gz` (BSD-3-Clause package; the module docstring
says the data is Public Domain, from Quandl WIKI Prices). Open/High/Low/Close/Volume are
unadjusted: price basis `as_traded`. The package's `GOOG` is "Google's pre-2014 history, filed
under GOOGL in the source": it is the class A security, loaded as symbol GOOGL (the same rule as
the LEAN map files: a symbol is the security's current ticker, so one series is one security).

Corporate actions, derived from `Adj Close` / `Close`: f(t) = AdjClose(t) / Close(t) is the
source's cumulative adjustment factor, so q = f(t-1) / f(t) is the factor of the action with
ex-date t (q = 1 on ordinary days, up to ~1e-13 float noise). An action exists where
|q - 1| > `EVENT_TOLERANCE` (1e-6). It is a split when q x s is within `SPLIT_TOLERANCE` (0.1%)
of 1 for a simple ratio s in `SPLIT_RATIOS` (n:1 and 1:n for n <= 20, and 3:2, 4:3, 5:4, 5:2,
5:3 and their reverses): split_ratio = s. Otherwise it is a cash dividend with
dividend_price_factor = q and cash_dividend = (1 - q) x Close(t-1). Checks on this file: the
splits found are AAPL 2000-06-21 and 2005-02-28 and MSFT 2003-02-18 (each q = 0.5 exactly); the
MSFT 2004-11-15 special dividend (q = 0.899, $3.03 on a 29.97 close) is not mistaken for a 10:9
split because 10:9 is not in the ratio set. The derived dividend can differ from the declared
amount by a few percent (Quandl's factor convention is not documented; e.g. AAPL 2012-08-09
gives 2.635 for the declared 2.65): the factor itself, which is what a total-return basis uses,
is exact. A q > 1 that is no reverse split fails `dividend_factor_out_of_range`.

Knowledge time: bars at the actual XNYS session close; actions at the ex-date's session open.
With a data directory, LEAN owns AAPL, GOOGL and IBM and all_stocks_5yr owns FB and MSFT (one
source per symbol), so these bars are compared and superseded; the FB/MSFT actions still load
(no other source has actions for them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from finfeast.errors import FinfeastError
from ingestion import files
from ingestion.actions import actions_batch
from ingestion.batch import Batch
from ingestion.context import SourceContext
from ingestion.daily_bars import AS_TRADED, bars_batch

COLUMNS = ("Ticker", "Date", "Open", "High", "Low", "Close", "Volume", "Adj Close")
SYMBOLS = {"GOOG": "GOOGL"}  # the package's GOOG is the class A security (now GOOGL)
SOURCE = "bokeh_daily"
EVENT_TOLERANCE = 1e-6
SPLIT_TOLERANCE = 1e-3
_SIMPLE = [float(n) for n in range(2, 21)] + [3 / 2, 4 / 3, 5 / 4, 5 / 2, 5 / 3]
SPLIT_RATIOS = tuple(sorted({*_SIMPLE, *(1.0 / r for r in _SIMPLE)}))


def stocks_path() -> Path:
    """The package's stocks file, located without importing bokeh_sampledata."""
    spec = importlib.util.find_spec("bokeh_sampledata")
    if spec is None or not spec.submodule_search_locations:
        raise FinfeastError("the PyPI package 'bokeh-sampledata' is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "_data" / "stocks.csv.gz"


def classify(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(split_ratio, dividend_price_factor) of action factors q = f(t-1) / f(t)."""
    ratios = np.asarray(SPLIT_RATIOS)
    dev = np.abs(q[:, None] * ratios[None, :] - 1.0)
    best = dev.argmin(axis=1) if len(q) else np.zeros(0, dtype=int)
    is_split = dev[np.arange(len(q)), best] <= SPLIT_TOLERANCE if len(q) else np.zeros(0, bool)
    split_ratio = np.where(is_split, ratios[best] if len(q) else 1.0, 1.0)
    dividend_factor = np.where(is_split, 1.0, q)
    return split_ratio, dividend_factor


def derive_actions(raw: pd.DataFrame, symbol: pd.Series) -> pd.DataFrame:
    """One row per action: ticker, ex `Date`, previous date and close, q, split ratio, factor."""
    frame = pd.DataFrame(
        {
            "symbol": symbol.to_numpy(),
            "Ticker": raw["Ticker"].to_numpy(),
            "Date": raw["Date"].to_numpy(),
            "close": pd.to_numeric(raw["Close"], errors="coerce").to_numpy(),
            "adj": pd.to_numeric(raw["Adj Close"], errors="coerce").to_numpy(),
        }
    )
    frame["_day"] = pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce")
    frame = frame.sort_values(["symbol", "_day"], kind="stable").reset_index(drop=True)
    f = frame["adj"] / frame["close"]
    same = frame["symbol"].eq(frame["symbol"].shift(1))
    frame["previous_date"] = frame["Date"].shift(1)
    frame["previous_close"] = frame["close"].shift(1)
    frame["q"] = f.shift(1) / f
    events = frame[same & ((frame["q"] - 1.0).abs() > EVENT_TOLERANCE)].copy()
    ratio, factor = classify(events["q"].to_numpy(dtype="float64"))
    events["split_ratio"] = ratio
    events["dividend_price_factor"] = factor
    return events.drop(columns=["adj", "close"]).reset_index(drop=True)


def extract(ctx: SourceContext) -> list[Batch]:
    types = {
        "Ticker": pa.string(),
        "Date": pa.string(),
        **{c: pa.float64() for c in COLUMNS[2:]},
    }
    read = files.read_table(stocks_path(), types, required=COLUMNS)
    raw = read.table.select(list(COLUMNS)).to_pandas()
    ticker = raw["Ticker"].fillna("").astype(str).str.strip()
    symbol = ticker.map(lambda t: SYMBOLS.get(t, t) if t else None)
    bars = bars_batch(
        raw,
        symbol=symbol,
        date=raw["Date"],
        prices={c.lower(): c for c in COLUMNS[2:7]},
        asset_class="equity",
        malformed=read.malformed,
        price_basis=AS_TRADED,
    )
    events = derive_actions(raw, symbol)
    actions = actions_batch(
        events,
        symbol=events["symbol"],
        ex_date=events["_day"],
        split_ratio=events["split_ratio"],
        dividend_price_factor=events["dividend_price_factor"],
        previous_close=events["previous_close"],
        source=SOURCE,
    )
    actions.raw = events.drop(columns=["_day"])
    return [bars, actions]
