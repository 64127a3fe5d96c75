"""Calendar: attributes of the bar's exchange-local (America/New_York) date and of the XNYS
session calendar, plus the session code every kernel receives.

Why the exchange calendar (`finfeast.sessions`, exchange-calendars XNYS) and not weekdays: month,
quarter and year ends are the last *sessions* of the period (Good Friday 2013-03-29 makes
2013-03-28 the last session of the quarter; 2018-03-29 is the last session of March 2018), and
`bdays_to_month_end` counts the sessions left. This is not look-ahead: NYSE publishes its
holiday and early-close schedule years ahead, so at any bar the sessions left in its month are
known. Outside the published schedule (before 1990, or beyond about a year ahead) the session
counts are unknown: the session flags are 0 and `bdays_to_month_end` is -1, never a weekday guess.

Session code (the `session` input of every kernel step): `2 * local day + regular`, local day =
days since 1970-01-01 of the bar's New York date, regular = 1 when the bar belongs to the regular
session. Daily bars summarise the regular session, so they are always regular; an intraday bar
(stamped at its end) is regular when its end lies in (open, close] of its date's XNYS session
(09:30-16:00, 13:00 on early-close days), so pre-market (04:00-09:30) and post-market
(16:00/13:00-20:00) bars and bars of non-session days are not. `vwap_session` uses the code to
restart at each session and to leave extended-hours bars out; the calendar features use its day.
One vectorised definition serves batch and online (online caches per code).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from finfeast import sessions
from transforms import catalog

EXCHANGE_TZ = "America/New_York"
NAMES: tuple[str, ...] = tuple(f.name for f in catalog.FAMILIES["calendar"].features)
_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_DAY = 86_400_000_000_000


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


# --- the XNYS schedule as arrays ------------------------------------------------------------------
@lru_cache(maxsize=1)
def _schedule() -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Session days (int64, ascending), their open and close (UTC ns), and the first and last
    day whose month the schedule covers completely (days outside: unknown)."""
    sched = sessions.schedule()
    days = sessions.session_days().astype(np.int64)
    opens = sched["open"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    closes = sched["close"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    # covered months: from the schedule's first (1990-01-02, New Year's Day a holiday) up to the
    # month before the last session's month (that month may hold sessions beyond the schedule)
    lo = int(
        days[0]
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    hi = (
        int(
            days[-1]
            .astype("datetime64[D]")
            .astype("datetime64[M]")
            .astype("datetime64[D]")
            .astype(np.int64)
        )
        - 1
    )
    return days, opens, closes, lo, hi


def _regular(days: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
    """True where a bar ending at `ts_ns` on local day `days` lies in that day's session."""
    sdays, opens, closes, _, _ = _schedule()
    pos = np.clip(np.searchsorted(sdays, days), 0, len(sdays) - 1)
    hit = sdays[pos] == days
    return hit & (ts_ns > opens[pos]) & (ts_ns <= closes[pos])


def codes_of(days: np.ndarray, regular: np.ndarray | bool) -> np.ndarray:
    """Session codes from local days and regular-session flags."""
    return np.asarray(days, dtype=np.int64) * 2 + np.asarray(regular, dtype=np.int64)


def day_of(codes: np.ndarray | int) -> np.ndarray | int:
    """The local day (days since epoch) of session codes."""
    return np.asarray(codes, dtype=np.int64) >> 1 if not isinstance(codes, int) else codes >> 1


def code_of_date(date: str) -> int:
    """Session code of a regular-session bar on an ISO date (tests, tools)."""
    return int(np.datetime64(date, "D").astype(np.int64)) * 2 + 1


def session_codes(stamps: pd.Series | pd.DatetimeIndex, intraday: bool = False) -> np.ndarray:
    """Session codes of many tz-aware bar-end timestamps (batch path)."""
    days = local_days(stamps)
    if not intraday:
        return codes_of(days, True)
    ns = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    return codes_of(days, _regular(days, ns))


def session_codes_of(ts_ns: np.ndarray, intraday: bool = False) -> np.ndarray:
    """Session codes of many UTC nanosecond bar-end timestamps (micro-batch path)."""
    days = local_days_of(ts_ns)
    if not intraday:
        return codes_of(days, True)
    return codes_of(days, _regular(days, np.asarray(ts_ns, dtype=np.int64)))


@lru_cache(maxsize=4096)
def _bounds(day: int) -> tuple[int, int]:
    """(open, close) UTC ns of the session on `day`; (0, 0) when the day is no session."""
    sdays, opens, closes, _, _ = _schedule()
    pos = int(np.searchsorted(sdays, day))
    if pos < len(sdays) and sdays[pos] == day:
        return int(opens[pos]), int(closes[pos])
    return 0, 0


def session_code(ts_ns: int, intraday: bool = False) -> int:
    """Session code of one UTC nanosecond bar-end timestamp (single-bar path, cached)."""
    day = local_day(ts_ns)
    if not intraday:
        return 2 * day + 1
    open_ns, close_ns = _bounds(day)
    return 2 * day + int(open_ns < ts_ns <= close_ns)


# --- features -------------------------------------------------------------------------------------
def calendar_features(codes: np.ndarray) -> np.ndarray:
    """Calendar columns (catalog order) for session codes (see module doc): (n, 11) int64."""
    days = day_of(np.asarray(codes, dtype=np.int64))
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

    sdays, _, _, lo, hi = _schedule()
    first_of_month = month_start.astype("datetime64[D]").astype(np.int64)
    next_month = (month_start + 1).astype("datetime64[D]").astype(np.int64)
    at = np.searchsorted(sdays, days, side="left")
    is_session = (at < len(sdays)) & (sdays[np.clip(at, 0, len(sdays) - 1)] == days)
    before = at - np.searchsorted(sdays, first_of_month, side="left")
    left = np.searchsorted(sdays, next_month, side="left") - np.searchsorted(
        sdays, days, side="right"
    )
    known = (days >= lo) & (days <= hi)
    is_month_end = known & is_session & (left == 0)
    columns = {
        "day_of_week": dow,
        "day_of_month": (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1,
        "day_of_year": (d - year_start).astype(np.int64) + 1,
        "week_of_year": week,
        "month": month,
        "quarter": (month - 1) // 3 + 1,
        "is_month_start": known & is_session & (before == 0),
        "is_month_end": is_month_end,
        "is_quarter_end": is_month_end & (month % 3 == 0),
        "is_year_end": is_month_end & (month == 12),
        "bdays_to_month_end": np.where(known, left, -1),
    }
    return np.column_stack([np.asarray(columns[name], dtype=np.int64) for name in NAMES])


@lru_cache(maxsize=4096)
def _calendar_values(code: int) -> tuple[int, ...]:
    return tuple(calendar_features(np.array([code]))[0].tolist())


def calendar_row(code: int) -> dict[str, int]:
    """Calendar features of one session code (the online path; cached: one entry per code)."""
    return dict(zip(NAMES, _calendar_values(code), strict=True))


def calendar_table(codes: np.ndarray) -> np.ndarray:
    """`calendar_features` of a few distinct codes through the per-code cache (micro-batches)."""
    return np.array([_calendar_values(int(c)) for c in codes], dtype=np.int64).reshape(
        -1, len(NAMES)
    )
