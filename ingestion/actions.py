"""Corporate actions: the canonical row builder, its rules, and price-basis conversion.

Why one module: two sources derive actions (LEAN factor files; bokeh-sampledata's adjusted
close) and the cross-vendor check converts `split_adjusted_as_of:D` prices back to the
as-traded basis with them; all three must agree on what a row means (docs/architecture.md):
`split_ratio` = new shares per old (7.0 for 7:1, 0.05 for 1:20), `split_price_factor` =
1/split_ratio, `dividend_price_factor` = 1 - dividend / previous close, `cash_dividend` in USD
per share on the as-traded basis of the ex-date. Knowledge time (`event_timestamp`) = the
ex-date's XNYS session open: the sources carry no announcement dates, and every action is
announced before its ex-date, so the open is the conservative instant.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from finfeast import sessions
from ingestion.batch import Batch
from ingestion.rules import NamedRule, required

AS_TRADED = "as_traded"
SPLIT_ADJUSTED = "split_adjusted_as_of:"
SNAP_DENOMINATOR = 20
SNAP_TOLERANCE = 1e-5


def snap_ratio(ratio: float) -> float:
    """A split ratio computed from rounded factors (LEAN prints 6 significant digits, so 7:1
    comes out as 6.9999972) snapped to the nearest fraction p/q with q <= 20 when within 1e-5
    relative; otherwise kept (GOOG's 2015 class C adjustment is a real 1.0027)."""
    if not np.isfinite(ratio) or ratio <= 0:
        return float(ratio)
    for value in (ratio, 1.0 / ratio):
        frac = Fraction(value).limit_denominator(SNAP_DENOMINATOR)
        if abs(float(frac) / value - 1.0) < SNAP_TOLERANCE:
            return float(frac) if value == ratio else 1.0 / float(frac)
    return float(ratio)


def action_rules() -> list[NamedRule]:
    """Rules of `corporate_actions`: fields present, ratio > 0, dividend >= 0, the ex-date is a
    known XNYS session (its open is the knowledge time), dividend factor in (0, 1]."""
    return [
        required(["symbol", "ex_date", "split_ratio", "cash_dividend", "dividend_price_factor"]),
        ("split_ratio_not_positive", lambda df: ~(df["split_ratio"] > 0).to_numpy()),
        ("negative_dividend", lambda df: (df["cash_dividend"] < 0).to_numpy()),
        ("unknown_ex_date_session", lambda df: df["event_timestamp"].isna().to_numpy()),
        (
            "dividend_factor_out_of_range",
            lambda df: (
                ~((df["dividend_price_factor"] > 0) & (df["dividend_price_factor"] <= 1)).to_numpy()
            ),
        ),
    ]


def actions_batch(
    raw: pd.DataFrame,
    symbol: pd.Series,
    ex_date: pd.Series,
    split_ratio: pd.Series,
    dividend_price_factor: pd.Series,
    previous_close: pd.Series,
    source: str,
) -> Batch:
    """A `corporate_actions` batch; `ex_date` naive dates (NaT allowed), aligned with `raw`.

    cash_dividend = (1 - dividend_price_factor) x previous close / split_ratio: the previous
    close is on the pre-ex-date basis, so a dividend paid on a split's ex-date is restated per
    new share (no such day occurs in the data; the formula keeps it right if one does).
    """
    ex = pd.Series(pd.to_datetime(ex_date).to_numpy(dtype="datetime64[ns]"), index=raw.index)
    ratio = split_ratio.astype("float64")
    dpf = dividend_price_factor.astype("float64")
    frame = pd.DataFrame(
        {
            "symbol": symbol.to_numpy(dtype=object),
            "ex_date": ex.dt.tz_localize("UTC"),
            "event_timestamp": sessions.session_opens(ex).to_numpy(),
            "split_ratio": ratio.to_numpy(),
            "cash_dividend": ((1.0 - dpf) * previous_close / ratio).clip(lower=0).to_numpy(),
            "split_price_factor": (1.0 / ratio).to_numpy(),
            "dividend_price_factor": dpf.to_numpy(),
            "source": source,
        },
        index=raw.index,
    )
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    # a tiny negative from rounding (1 - dpf < 0 by 1e-16) is clipped; a real one fails the rule
    frame.loc[(1.0 - dpf).to_numpy() < -1e-9, "cash_dividend"] = -1.0
    return Batch("corporate_actions", frame, raw, action_rules())


def split_multiplier(
    symbols: pd.Series, dates: pd.Series, basis: pd.Series, actions: pd.DataFrame | None
) -> np.ndarray:
    """Per row, the factor that turns a price on `basis` into the as-traded price of its date:
    1 for `as_traded`; for `split_adjusted_as_of:D` the product of split ratios of the symbol's
    actions with ex-date after the row's date and on or before D (AAPL 2013-02-08 in
    all_stocks_5yr: 67.85 x 7 = 474.98, LEAN's raw close). `dates` are UTC instants or naive
    dates; only their calendar date (New York) matters."""
    out = np.ones(len(symbols), dtype="float64")
    basis = basis.astype(str).to_numpy()
    adjusted = np.char.startswith(basis.astype(str), SPLIT_ADJUSTED)
    if actions is None or actions.empty or not adjusted.any():
        return out
    day = _ny_days(dates)
    splits = actions[actions["split_ratio"] != 1.0]
    sym = symbols.to_numpy(dtype=object)
    where = np.flatnonzero(adjusted)
    groups = pd.DataFrame({"s": sym[where], "b": basis[where], "i": where}).groupby(["s", "b"])
    for (symbol, label), part in groups["i"]:
        rows = part.to_numpy()
        mine = splits[splits["symbol"] == symbol].sort_values("ex_date")
        if mine.empty:
            continue
        as_of = np.datetime64(label[len(SPLIT_ADJUSTED) :], "D").astype("int64")
        ex = _ny_days(mine["ex_date"], already_dates=True)
        keep = ex <= as_of
        ex, ratios = ex[keep], mine["split_ratio"].to_numpy()[keep]
        if not len(ex):
            continue
        cum = np.concatenate([[1.0], np.cumprod(ratios)])
        # product of ratios with ex > day: total / product of those with ex <= day
        pos = np.searchsorted(ex, day[rows], side="right")
        out[rows] = cum[-1] / cum[pos]
    return out


def _ny_days(values: pd.Series, already_dates: bool = False) -> np.ndarray:
    s = pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC" if already_dates else sessions.EXCHANGE_TZ).dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[D]").astype("int64")
