"""When a value became known: daily dates -> tz-aware UTC instants (no look-ahead).

Why: a daily bar dated D is only known after that day's close, so it is stamped at the close
(16:00 America/New_York for US sessions) in UTC; an as-of join at any earlier moment of D cannot
see it. Early-close days (13:00) are still stamped 16:00: later than the true close, so safe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

US_EQUITY_TZ = "America/New_York"


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


def session_close_utc(dates: pd.Series | np.ndarray, fmt: str | None = None) -> pd.Series:
    """US equity session close (16:00 New York) of each date, in UTC."""
    return local_time_utc(dates, 16, 0, US_EQUITY_TZ, fmt=fmt)
