"""Bar frequency of a feature frame or stream, and the annualisation that follows from it.

Why: the volatility features (`rv_*`, Parkinson, Garman-Klass, Rogers-Satchell) are stated as
annualised. The kernels compute them as for daily bars (x sqrt(252)); a frame of other bars
rescales them here so that "annualised" stays true: x sqrt(periods per year / 252), with
periods per year = 252 sessions x bars per regular session (6.5 h: 390 one-minute bars, 7
hourly bars as LEAN's hourly files have, the first one a half hour). The frame (`compute_features`
/ `OnlineFeatures`) is told its frequency; the market stream declares its own
(`stream_jobs.views.BAR_FREQUENCY`, one-minute bars). Extended-hours minute bars count as bars
too: their returns enter the windows like any other bar, so an annualised figure that spans them
mixes quieter pre/post-market minutes in (documented in docs/features.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transforms import catalog

SESSION_SECONDS = 23_400  # 09:30-16:00 New York, a full regular session
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class BarFrequency:
    """Bars of `seconds` length: daily (86 400) or intraday (< 86 400)."""

    seconds: int

    @property
    def intraday(self) -> bool:
        return self.seconds < DAY_SECONDS

    @property
    def bars_per_session(self) -> int:
        return math.ceil(SESSION_SECONDS / self.seconds) if self.intraday else 1

    @property
    def periods_per_year(self) -> int:
        return catalog.TRADING_DAYS * self.bars_per_session

    @property
    def vol_scale(self) -> float:
        """Factor on the kernels' daily annualisation: sqrt(periods per year / 252)."""
        return math.sqrt(self.bars_per_session)

    @property
    def label(self) -> str:
        return "1d" if not self.intraday else f"{self.seconds}s"


DAILY = BarFrequency(DAY_SECONDS)
MINUTE = BarFrequency(60)


def bar_frequency(value: BarFrequency | str | int | None) -> BarFrequency:
    """A BarFrequency from "1d", "1min", "1h", "60s", seconds (int) or None (daily)."""
    if value is None:
        return DAILY
    if isinstance(value, BarFrequency):
        freq = value
    elif isinstance(value, int | np.integer) and not isinstance(value, bool):
        freq = BarFrequency(int(value))
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("1d", "d", "daily", "day"):
            return DAILY
        try:
            freq = BarFrequency(int(pd.Timedelta(text).total_seconds()))
        except ValueError as exc:
            raise ValueError(f"unknown bar frequency {value!r} (e.g. '1d', '1min', '1h')") from exc
    else:
        raise ValueError(f"unknown bar frequency {value!r} (e.g. '1d', '1min', '1h')")
    if not 0 < freq.seconds <= DAY_SECONDS:
        raise ValueError(f"bar frequency {value!r}: daily or intraday bars only")
    return freq


_FLOAT = catalog.bar_float_names()
ANNUALISED_COLUMNS = np.array([_FLOAT.index(n) for n in catalog.ANNUALISED], dtype=np.int64)


def annualise(out: np.ndarray, freq: BarFrequency) -> None:
    """Rescale the annualised columns of a kernel output (rows x every float feature, or one row)
    in place from the daily convention to `freq`; nothing to do for daily bars."""
    if freq.intraday:
        out[..., ANNUALISED_COLUMNS] *= freq.vol_scale
