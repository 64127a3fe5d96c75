"""Calendar: attributes of the bar's exchange-local (America/New_York) date, from the timestamp only.

Why exchange-local: a daily bar is stamped at its 16:00 New York close (21:00 UTC in winter), and
an intraday bar belongs to the New York trading date it happened on. Month/quarter-end flags use
weekdays only: holidays cannot be known from the timestamp, and knowing the next trading day would
be look-ahead. One vectorised definition serves batch and online (online caches per date).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from transforms import catalog

EXCHANGE_TZ = "America/New_York"
NAMES: tuple[str, ...] = tuple(f.name for f in catalog.FAMILIES["calendar"].features)
_NS_PER_HOUR = 3_600_000_000_000


def local_days(timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Exchange-local date of each tz-aware timestamp, as days since 1970-01-01 (int64)."""
    index = pd.DatetimeIndex(timestamps)
    if index.tz is None:
        index = index.tz_localize("UTC")
    local = index.tz_convert(EXCHANGE_TZ).tz_localize(None)
    return local.values.astype("datetime64[D]").astype(np.int64)


@lru_cache(maxsize=65536)
def _local_day_of_hour(utc_hour: int) -> int:
    # Time-zone offsets change on whole UTC hours, so the local date is constant within one.
    stamp = pd.Timestamp(utc_hour * _NS_PER_HOUR, tz="UTC").tz_convert(EXCHANGE_TZ)
    return int(np.datetime64(stamp.tz_localize(None), "D").astype(np.int64))


def local_day(ts_ns: int) -> int:
    """Exchange-local date of one UTC nanosecond timestamp (cached per UTC hour)."""
    return _local_day_of_hour(ts_ns // _NS_PER_HOUR)


def local_days_of(ts_ns: np.ndarray) -> np.ndarray:
    """`local_day` of many UTC nanosecond timestamps (micro-batches: few distinct hours)."""
    hours, inverse = np.unique(ts_ns // _NS_PER_HOUR, return_inverse=True)
    return np.array([_local_day_of_hour(int(h)) for h in hours], dtype=np.int64)[inverse]


def calendar_features(days: np.ndarray) -> np.ndarray:
    """Calendar columns (catalog order) for local dates given as days since epoch: (n, 11) int64."""
    days = np.asarray(days, dtype=np.int64)
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    year_start = d.astype("datetime64[Y]").astype("datetime64[D]")
    dow = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    thursday = days - dow + 3  # the ISO week's Thursday decides its year
    iso_year_start = (
        thursday.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    )
    week = (thursday - iso_year_start.astype(np.int64)) // 7 + 1
    next_month = (month_start + 1).astype("datetime64[D]")
    left = np.busday_count(d + 1, next_month)  # weekdays after d, up to month end
    before = np.busday_count(month_start.astype("datetime64[D]"), d)
    is_month_end = left == 0
    columns = {
        "day_of_week": dow,
        "day_of_month": (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1,
        "day_of_year": (d - year_start).astype(np.int64) + 1,
        "week_of_year": week,
        "month": month,
        "quarter": (month - 1) // 3 + 1,
        "is_month_start": before == 0,
        "is_month_end": is_month_end,
        "is_quarter_end": is_month_end & (month % 3 == 0),
        "is_year_end": is_month_end & (month == 12),
        "bdays_to_month_end": left,
    }
    return np.column_stack([np.asarray(columns[name], dtype=np.int64) for name in NAMES])


@lru_cache(maxsize=4096)
def _calendar_values(day: int) -> tuple[int, ...]:
    return tuple(calendar_features(np.array([day]))[0].tolist())


def calendar_row(day: int) -> dict[str, int]:
    """Calendar features of one local date (the online path; cached: one entry per date)."""
    return dict(zip(NAMES, _calendar_values(day), strict=True))


def calendar_table(days: np.ndarray) -> np.ndarray:
    """`calendar_features` of a few distinct dates through the per-date cache (micro-batches)."""
    return np.array([_calendar_values(int(d)) for d in days], dtype=np.int64).reshape(
        -1, len(NAMES)
    )
