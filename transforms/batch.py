"""`compute_features`: the bar-only catalog over a history of many symbols (backfill).

Runs the same kernels as the stream path (`transforms.engine`) over each symbol's bars in time
order, from fresh state, in compiled code; calendar columns come from their vectorised definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from transforms import catalog, frequency
from transforms.adjustments import ActionBook
from transforms.engine import (
    FLOAT_NAMES,
    KERNEL_FAMILIES,
    N_FLOAT,
    NO_TIME,
    STATE_SLOTS,
    family_mask,
    run_rows,
)
from transforms.families import calendar
from transforms.validation import InvalidBarsError, check_columns, raise_on_problems

PRICE_FIELDS = ("open", "high", "low", "close", "volume")


def utc_timestamps(values: pd.Series) -> pd.Series:
    """tz-aware UTC timestamps (their unit kept, so output keys equal the input's); naive ones
    are taken as UTC (canonical tables are UTC)."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
        return values
    stamps = values if str(dtype).startswith("datetime64") else pd.to_datetime(values)
    if getattr(stamps.dt, "tz", None) is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")


def nanoseconds(stamps: pd.Series) -> np.ndarray:
    """int64 UTC nanoseconds of tz-aware timestamps of any unit."""
    return stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)


def feature_frame(
    symbols: np.ndarray,
    stamps: pd.Series,
    floats: np.ndarray,
    float_names: Sequence[str],
    session: np.ndarray | None,
    few_days: bool = False,
) -> pd.DataFrame:
    """`symbol, event_timestamp`, the float features (no copy) and, given the bars' local days,
    the calendar features: the output layout of both batch and micro-batch paths (`few_days`:
    micro-batches, whose dates come from the per-date cache)."""
    parts = [
        pd.DataFrame({"symbol": symbols, "event_timestamp": stamps.reset_index(drop=True)}),
        pd.DataFrame(floats, columns=list(float_names), copy=False),
    ]
    if session is not None:
        codes, days = pd.factorize(session)
        make = calendar.calendar_table if few_days else calendar.calendar_features
        table = make(np.asarray(days))
        parts.append(
            pd.DataFrame({name: table[:, j][codes] for j, name in enumerate(calendar.NAMES)})
        )
    return pd.concat(parts, axis=1, copy=False)


def compute_features(
    bars: pd.DataFrame,
    families: Sequence[str] | None = None,
    bar_frequency: frequency.BarFrequency | str | int | None = None,
    actions: ActionBook | None = None,
) -> pd.DataFrame:
    """Every bar-only feature of every bar.

    Input: `symbol, event_timestamp, open, high, low, close, volume` (any row order, many
    symbols) and the corporate actions of their series (`actions`, None = none): at each bar the
    windows hold earlier prices adjusted for the actions known by then (docs/features.md "Prices
    and corporate actions"), exactly as `OnlineFeatures(actions=...)` streams them. Output: one row per input row, sorted by (symbol, event_timestamp), columns
    `symbol, event_timestamp` + the bar features in catalog order (float64; calendar int64);
    warm-up values are NaN. `families` restricts the output to some bar families (benchmarks,
    partial rebuilds). `bar_frequency` ("1d" default, "1min", ...): annualisation and the
    regular-session test of `vwap_session` (transforms/frequency.py, families/calendar.py). Raises InvalidBarsError on unusable bars or duplicate (symbol, time) pairs.
    """
    check_columns(bars)
    raise_on_problems(bars)
    stamps = utc_timestamps(bars["event_timestamp"])
    codes, symbols = pd.factorize(bars["symbol"], sort=True)
    ts = nanoseconds(stamps)
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    dup = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    if dup.any():
        first = int(np.flatnonzero(dup)[0]) + 1
        raise InvalidBarsError(
            f"{int(dup.sum())} duplicate (symbol, event_timestamp) bar(s), e.g. "
            f"{symbols[codes[first]]} {pd.Timestamp(ts[first], tz='UTC')}"
        )
    sorted_stamps = stamps.iloc[order]
    freq = frequency.bar_frequency(bar_frequency)
    session = calendar.session_codes(sorted_stamps, freq.intraday)
    prices = [bars[col].to_numpy(dtype=np.float64)[order] for col in PRICE_FIELDS]

    wanted = (*KERNEL_FAMILIES, "calendar") if families is None else tuple(families)
    mask = family_mask(wanted)
    out = np.empty((len(codes), N_FLOAT))
    out.fill(np.nan)  # touch the pages up front: page faults inside the kernel cost far more
    state = np.zeros((len(symbols), STATE_SLOTS))
    last_ts = np.full(len(symbols), NO_TIME, dtype=np.int64)
    book = actions if actions is not None else ActionBook.empty()
    pending = book.cursor([str(x) for x in symbols], last_ts)
    run_rows(
        state, last_ts, codes.astype(np.int64), ts, *prices, session, out, mask, *pending.args()
    )
    frequency.annualise(out, freq)

    keep = [j for j, name in enumerate(FLOAT_NAMES) if catalog.family_of(name) in wanted]
    contiguous = bool(keep) and keep == list(range(keep[0], keep[-1] + 1))
    if contiguous:
        floats = out[:, keep[0] : keep[-1] + 1]  # adjacent families: a view, no copy
    else:
        floats = out[:, keep]
    return feature_frame(
        np.asarray(symbols)[codes],
        sorted_stamps,
        floats,
        [FLOAT_NAMES[j] for j in keep],
        session if "calendar" in wanted else None,
    )
