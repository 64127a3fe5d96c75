"""When a value became known (knowledge time): source dates -> tz-aware UTC instants.

Why one module: every offline row carries the instant its value became knowable, and a
historical join at an earlier moment must not see it. The rules, one per kind of source (also in
docs/ingestion.md and each source module's docstring):

* Daily exchange bars dated D: the actual XNYS close of session D (`finfeast.sessions`, which
  reads exchange-calendars), so 13:00 New York on an early-close day such as 2013-11-29. A date
  that is no XNYS session gives NaT, which the bar rules quarantine as `not_a_session`.
* VIX dated D: the Cboe index close, 15 minutes after the XNYS close of D (16:15, or 13:15 on an
  early close). On the days Cboe published a VIX while the NYSE was closed (2004-06-11 and the
  holiday sessions since 2022), 16:15 New York of D (the latest regular VIX close; later than
  the truth, never earlier).
* EIA daily spot prices (WTI, Brent) dated D: EIA republishes the day's spot assessments the
  next weekday that is not a US federal holiday, between 07:30 and 08:30 New York (EIA "Daily
  Prices"). Stamped at the XNYS close of the first session on or after that publication day:
  never visible to D's own 16:00 close, and the next session's bars see it.
* Fed H.10 / G.5 monthly averages of month M: the G.5 release comes out on the first business
  day of month M+1 (e.g. G.5 dated October 1, 2010 holds September's averages). Stamped at 17:00
  New York of the first weekday of M+1 that is not a US federal holiday (the Fed posts its FX
  data at 16:15; 17:00 leaves a margin).
* ECB euro reference rates dated D: published around 16:00 CET (Frankfurt time) on D; stamped
  at 17:00 Europe/Berlin of D, an hour of margin (still before the New York close of D).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

from finfeast import sessions

US_EQUITY_TZ = sessions.EXCHANGE_TZ
VIX_AFTER_CLOSE = pd.Timedelta(minutes=15)


def local_time_utc(
    dates: pd.Series | np.ndarray,
    hour: int,
    minute: int = 0,
    tz: str = US_EQUITY_TZ,
    fmt: str | None = None,
) -> pd.Series:
    """Each date at `hour:minute` local time in `tz`, as datetime64[ns, UTC].

    Vectorised over the distinct dates (a 600k-row file has ~1.3k of them). Unparseable dates
    give NaT, which the validator reports under `required_fields`.
    """
    codes, labels = pd.factorize(pd.Series(dates))  # parse each distinct date once
    day = pd.to_datetime(pd.Series(labels), format=fmt, errors="coerce")
    if isinstance(day.dtype, pd.DatetimeTZDtype):
        day = day.dt.tz_localize(None)
    uniq = np.append(day.dt.normalize().to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT"))
    inverse = codes  # -1 (missing) picks the trailing NaT
    local = pd.DatetimeIndex(uniq) + pd.Timedelta(hours=hour, minutes=minute)
    utc = local.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    naive = utc.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    out = pd.Series(naive[inverse], index=getattr(dates, "index", None))
    return out.dt.tz_localize("UTC")


def parse_dates(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """Naive calendar dates (datetime64[ns], midnight); unparseable -> NaT. One parse per value."""
    codes, labels = pd.factorize(pd.Series(dates))
    day = pd.to_datetime(pd.Series(labels), format=fmt, errors="coerce")
    if isinstance(day.dtype, pd.DatetimeTZDtype):
        day = day.dt.tz_localize(None)
    uniq = np.append(day.dt.normalize().to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT"))
    return pd.Series(uniq[codes], index=getattr(dates, "index", None))


def session_close_utc(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """The actual XNYS close (UTC) of each session date (early closes included); NaT for a date
    that is no session or does not parse."""
    out = sessions.session_closes(dates, fmt=fmt)
    out.index = getattr(dates, "index", out.index)
    return out


def vix_close_utc(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """The Cboe VIX close of each date: XNYS close + 15 min; 16:15 New York on non-XNYS days."""
    closes = session_close_utc(dates, fmt) + VIX_AFTER_CLOSE
    fallback = local_time_utc(dates, 16, 15, US_EQUITY_TZ, fmt=fmt)
    return closes.where(closes.notna(), fallback)


def _federal_holidays() -> np.ndarray:
    cal = USFederalHolidayCalendar()
    return cal.holidays(start="1970-01-01", end="2035-12-31").values.astype("datetime64[D]")


def next_business_day(days: pd.Series, strictly_after: bool) -> pd.Series:
    """For naive dates, the first US business day (weekday, no federal holiday) after each date
    (`strictly_after`) or on/after it."""
    values = days.to_numpy(dtype="datetime64[ns]")
    ok = ~np.isnat(values)
    d = values[ok].astype("datetime64[D]")
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = np.busday_offset(
        d + (1 if strictly_after else 0), 0, roll="forward", holidays=_federal_holidays()
    ).astype("datetime64[ns]")
    return pd.Series(out, index=days.index)


def first_session_close_on_or_after(days: pd.Series) -> pd.Series:
    """The close (UTC) of the first XNYS session on or after each naive date; NaT beyond the
    calendar (before its first session date's year or after its end)."""
    sched = sessions.schedule()
    session_dates = sched.index.to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    values = days.to_numpy(dtype="datetime64[ns]")
    pos = np.searchsorted(session_dates, values, side="left")
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    # a date before the calendar's first session cannot be placed: NaT (no guessing)
    ok = ~np.isnat(values) & (pos < len(session_dates)) & (values >= session_dates[0])
    out[ok] = closes[pos[ok]]
    return pd.Series(out, index=days.index).dt.tz_localize("UTC")


def eia_spot_known_utc(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """EIA daily spot price of D: the XNYS close of the first session on or after the next US
    business day after D (EIA republishes a day's prices the next business morning)."""
    day = parse_dates(dates, fmt)
    return first_session_close_on_or_after(next_business_day(day, strictly_after=True))


def fed_monthly_known_utc(months: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """Fed G.5 monthly average of month M (dated the 1st of M): 17:00 New York of the first US
    business day of month M+1."""
    start = parse_dates(months, fmt)
    following = pd.Series(
        (start + pd.offsets.MonthBegin(1)).to_numpy(dtype="datetime64[ns]"), index=start.index
    )
    release = next_business_day(following, strictly_after=False)
    local = pd.DatetimeIndex(release) + pd.Timedelta(hours=17)
    utc = local.tz_localize(US_EQUITY_TZ, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    return pd.Series(utc, index=start.index)


def ecb_known_utc(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """ECB reference rate of D: 17:00 Frankfurt (Europe/Berlin, CET/CEST) on D."""
    return local_time_utc(dates, 17, 0, "Europe/Berlin", fmt=fmt)
