"""The NYSE (XNYS) trading calendar from `exchange-calendars`: sessions, holidays, early closes.

Why one module: ingestion stamps a daily bar at its session's actual close (13:00 New York on an
early-close day, 16:00 otherwise), corporate actions become known at their ex-date's session open,
and the calendar features (month/quarter ends, sessions left in the month) count real sessions,
so Good Friday and other holidays are handled the same way everywhere. Exchange holiday schedules
are published years ahead, so using the calendar at time t is not look-ahead.

All instants are tz-aware UTC pandas objects; dates are exchange-local calendar dates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ = "America/New_York"
FIRST_DATE = "1990-01-02"


@lru_cache(maxsize=1)
def schedule() -> pd.DataFrame:
    """XNYS sessions from 1990 to about a year ahead: index = session date (naive), columns
    `open`, `close` (tz-aware UTC), `date_ns` (int64 days since epoch of the session date)."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar(EXCHANGE, start=FIRST_DATE)
    frame = cal.schedule[["open", "close"]].copy()
    frame.index = pd.DatetimeIndex(frame.index).tz_localize(None).normalize()
    frame["day"] = frame.index.values.astype("datetime64[D]").astype(np.int64)
    return frame


def _dates(dates: pd.Series | np.ndarray | list, fmt: str | None = None) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(pd.Series(np.asarray(dates)), format=fmt, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None)
    return pd.DatetimeIndex(parsed).normalize()


def _lookup(dates: pd.Series | np.ndarray | list, column: str, fmt: str | None) -> pd.Series:
    index = dates.index if isinstance(dates, pd.Series) else None
    codes, uniq = pd.factorize(_dates(dates, fmt))  # each distinct date looked up once
    table = schedule()[column].reindex(pd.DatetimeIndex(uniq))
    values = np.append(table.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT"))
    out = pd.Series(values[codes], index=index)  # -1 (unparseable) picks the trailing NaT
    return out.dt.tz_localize("UTC")


def session_closes(dates: pd.Series | np.ndarray | list, fmt: str | None = None) -> pd.Series:
    """The actual XNYS close (UTC) of each session date; NaT for a date that is no session
    (weekend, holiday) or cannot be parsed, so the validator can quarantine it."""
    return _lookup(dates, "close", fmt)


def session_opens(dates: pd.Series | np.ndarray | list, fmt: str | None = None) -> pd.Series:
    """The XNYS open (UTC) of each session date; NaT for non-sessions."""
    return _lookup(dates, "open", fmt)


def is_session(dates: pd.Series | np.ndarray | list, fmt: str | None = None) -> np.ndarray:
    """Boolean mask: which dates are XNYS sessions."""
    return session_closes(dates, fmt).notna().to_numpy()


def session_days() -> np.ndarray:
    """Every session date as int64 days since 1970-01-01, ascending (for vectorised lookups)."""
    return schedule()["day"].to_numpy()


def next_session_open(instants: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """For each tz-aware instant, the first XNYS session open at or after it (UTC)."""
    opens = schedule()["open"].to_numpy(dtype="datetime64[ns]")
    stamps = pd.DatetimeIndex(instants)
    if stamps.tz is None:
        stamps = stamps.tz_localize("UTC")
    ns = stamps.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    pos = np.searchsorted(opens, ns, side="left")
    out = np.full(len(ns), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = pos < len(opens)
    out[ok] = opens[pos[ok]]
    return pd.Series(out).dt.tz_localize("UTC")
