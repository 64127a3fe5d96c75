"""Training labels: forward returns and directions, each stamped with the time it becomes known.

Why a module of its own: a label looks into the future by definition, so it must never sit in a
feature table or feature view. Labels are written to their own offline table `labels_daily` and only
meet features inside a point-in-time join (`transforms.training`), keyed by the time the
*prediction* is made (`event_timestamp`, the session close of the anchor bar).

For a horizon of h bars, per symbol in time order:
- `fwd_ret_h`  = close[t+h] / (close[t] x F) - 1, the total return over the symbol's own next h
  bars on the as-of-t basis: F is the product of split x dividend factors of the corporate actions
  taking effect after bar t up to bar t+h (`transforms.adjustments.ActionBook.bar_factors`), so
  a split between t and t+h is not a crash and a dividend is not a loss. Without actions F = 1.
- `fwd_dir_h`  = 1.0 if fwd_ret_h > 0 else 0.0 (null when fwd_ret_h is null)
- `label_available_at_h` = event_timestamp[t+h], the moment the label can first be observed.
  A training set built "as of" time T may only use rows with label_available_at_h <= T, and a
  walk-forward split must purge training rows whose label is only known after the test start.
The last h bars of each symbol have no label yet (null), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError
from transforms.adjustments import ActionBook

HORIZONS: tuple[int, ...] = (1, 5, 20)
LABELS_TABLE = "labels_daily"
LABELS_KEY = ("symbol", "event_timestamp")
_REQUIRED = ("symbol", "event_timestamp", "close")


def return_label(h: int) -> str:
    return f"fwd_ret_{h}"


def direction_label(h: int) -> str:
    return f"fwd_dir_{h}"


def available_at(h: int) -> str:
    return f"label_available_at_{h}"


def label_columns(horizons: Sequence[int] = HORIZONS) -> list[str]:
    """Value columns of the labels table (returns and directions, no timestamps)."""
    return [c for h in horizons for c in (return_label(h), direction_label(h))]


def compute_labels(
    bars: pd.DataFrame,
    horizons: Sequence[int] = HORIZONS,
    actions: ActionBook | None = None,
) -> pd.DataFrame:
    """Forward-return labels for every (symbol, event_timestamp) of `bars` (total returns
    through the corporate actions in `actions`).

    Returns one row per input bar, sorted by symbol then time, with `symbol`, `event_timestamp`,
    and per horizon `fwd_ret_h`, `fwd_dir_h`, `label_available_at_h`.
    """
    missing = [c for c in _REQUIRED if c not in bars.columns]
    if missing:
        raise FinfeastError(f"compute_labels: bars lack column(s) {', '.join(missing)}")
    if any(int(h) < 1 for h in horizons):
        raise FinfeastError(f"compute_labels: horizons must be >= 1, got {list(horizons)}")
    df = bars.loc[:, list(_REQUIRED)].sort_values(["symbol", "event_timestamp"], kind="stable")
    if df.duplicated(["symbol", "event_timestamp"]).any():
        raise FinfeastError("compute_labels: duplicate (symbol, event_timestamp) rows in bars")
    df = df.reset_index(drop=True)
    close = df["close"].to_numpy(dtype="float64")
    close = np.where(close > 0, close, np.nan)  # a non-positive price has no return
    ts = df["event_timestamp"]
    codes = pd.factorize(df["symbol"])[0]
    # growth[r]: product of the action factors applied up to bar r (per symbol), so the factor
    # between t and t+h is growth[t+h] / growth[t]
    growth = np.ones(len(df))
    if actions is not None and len(actions):
        step = actions.bar_factors(
            df["symbol"].to_numpy(), pd.DatetimeIndex(ts).as_unit("ns").asi8, total=True
        )
        first = np.r_[True, codes[1:] != codes[:-1]]
        step[first] = 1.0  # actions at or before a symbol's first bar are in its basis already
        growth = pd.Series(step).groupby(codes).cumprod().to_numpy()
    out = df[["symbol", "event_timestamp"]].copy()
    n = len(df)
    for h in horizons:
        h = int(h)
        ahead = np.full(n, np.nan)
        same = np.zeros(n, dtype=bool)
        if n > h:
            same[:-h] = codes[h:] == codes[:-h]
            ahead[:-h] = close[h:] / (growth[h:] / growth[:-h])
        ahead = np.where(same, ahead, np.nan)
        ret = ahead / close - 1.0
        out[return_label(h)] = ret
        out[direction_label(h)] = np.where(np.isnan(ret), np.nan, (ret > 0).astype("float64"))
        avail = ts.shift(-h)
        out[available_at(h)] = avail.where(same & ~np.isnan(ret))
    return out
