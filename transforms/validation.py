"""Input checks for bars entering the feature kernels.

Why: a null or non-positive price would poison every recursive state (an EMA stays NaN forever),
and a duplicate or out-of-order bar would double-count. Such bars are rejected with a reason, never
folded in silently. OHLC consistency (high >= low, close within the range) is ingestion's rule:
real data has such defects and the features stay computable on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError

BAR_COLUMNS = ("symbol", "event_timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")


class InvalidBarsError(FinfeastError, ValueError):
    """Bars the kernels cannot fold in; `problems` holds one row per bad bar with its reason."""

    def __init__(self, message: str, problems: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else pd.DataFrame()


def bar_problems(bars: pd.DataFrame) -> pd.Series:
    """Reason each row cannot be used ("" when fine): null symbol/time, non-finite or
    non-positive price, negative or non-finite volume. A stream job routes non-empty ones to
    its dead-letter topic."""
    reasons = pd.Series("", index=bars.index, dtype=object)
    reasons[bars["volume"].isna() | ~np.isfinite(bars["volume"].astype(float))] = (
        "volume not finite"
    )
    reasons[bars["volume"].astype(float) < 0] = "volume negative"
    for col in PRICE_COLUMNS:
        values = bars[col].astype(float)
        reasons[~(np.isfinite(values) & (values > 0))] = f"{col} not a positive finite number"
    reasons[bars["event_timestamp"].isna()] = "event_timestamp missing"
    reasons[bars["symbol"].isna()] = "symbol missing"
    return reasons


def check_columns(bars: pd.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise InvalidBarsError(f"bars lack required columns {missing}; need {list(BAR_COLUMNS)}")


def all_usable(bars: pd.DataFrame) -> bool:
    """Fast vectorised check; `bar_problems` explains the failures when it is False."""
    for col in PRICE_COLUMNS:
        prices = bars[col].to_numpy(dtype=np.float64)
        if not (prices > 0).all() or not np.isfinite(prices).all():  # NaN fails `> 0`
            return False
    volume = bars["volume"].to_numpy(dtype=np.float64)
    if not (volume >= 0).all() or not np.isfinite(volume).all():
        return False
    return not (bars["symbol"].isna().any() or bars["event_timestamp"].isna().any())


def raise_on_problems(bars: pd.DataFrame) -> None:
    if all_usable(bars):
        return
    reasons = bar_problems(bars)
    bad = reasons != ""
    if bad.any():
        problems = bars.loc[bad, ["symbol", "event_timestamp"]].assign(reason=reasons[bad])
        first = problems.iloc[0]
        raise InvalidBarsError(
            f"{int(bad.sum())} bar(s) cannot be used, e.g. {first['symbol']} "
            f"{first['event_timestamp']}: {first['reason']} (see .problems)",
            problems,
        )


def check_bar(bar: Mapping) -> tuple[float, float, float, float, float]:
    """(open, high, low, close, volume) of one bar as floats, or InvalidBarsError."""
    missing = [k for k in BAR_COLUMNS if k not in bar]
    if missing:
        raise InvalidBarsError(f"bar {dict(bar)!r} lacks {missing}")
    try:
        o, h, low, c, v = (
            float(bar["open"]),
            float(bar["high"]),
            float(bar["low"]),
            float(bar["close"]),
            float(bar["volume"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidBarsError(f"bar {dict(bar)!r} is not usable: {exc}") from None
    if not (o > 0 and h > 0 and low > 0 and c > 0 and v >= 0) or not math.isfinite(
        o + h + low + c + v
    ):
        raise InvalidBarsError(
            f"bar of {bar.get('symbol')!r} at {bar.get('event_timestamp')}: prices must be "
            "positive finite numbers and volume finite and >= 0"
        )
    return o, h, low, c, v
