"""Streaming features: `OnlineFeatures` folds bars one at a time (or in micro-batches) into
per-symbol state and returns the bar-only features as of each bar, identical to
`compute_features` over the same history.

Replayed or late bars (event_timestamp <= the symbol's last folded bar) are NOT folded in:
`update` returns None and `update_many` leaves them out of its result; both count them in
`stale_bars`. At-least-once delivery makes replays normal, so this is not an exception. Unusable
bars (null/non-positive prices, negative volume) raise InvalidBarsError before touching state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transforms import frequency
from transforms.batch import PRICE_FIELDS, feature_frame, nanoseconds, utc_timestamps
from transforms.engine import (
    FLOAT_NAMES,
    N_FLOAT,
    NO_TIME,
    STATE_SLOTS,
    family_mask,
    run_rows,
    update_one,
)
from transforms.families import calendar
from transforms.validation import InvalidBarsError, check_bar, check_columns, raise_on_problems

_ALL = family_mask()


def _ns(value: object) -> int:
    """UTC nanoseconds of a timestamp-like value (naive = UTC); InvalidBarsError if missing."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        stamp = value if isinstance(value, pd.Timestamp) else pd.Timestamp(value)
    except (TypeError, ValueError):  # pandas' DateParseError is a ValueError
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InvalidBarsError(f"bar event_timestamp {value!r} is missing or not a time")
    return stamp.value


class OnlineFeatures:
    """Per-symbol streaming state for the whole bar-only catalog.

    State is one float64 row of `STATE_SLOTS` per symbol (rings for windowed features, O(1) slots
    for EMA/Wilder-type ones) plus its last event time; `state_bytes()` reports it.
    """

    def __init__(
        self, capacity: int = 1024, bar_frequency: frequency.BarFrequency | str | None = None
    ) -> None:
        self.frequency = frequency.bar_frequency(bar_frequency)  # as compute_features'
        self._index: dict[str, int] = {}
        self._state = np.zeros((capacity, STATE_SLOTS))
        self._last_ts = np.full(capacity, NO_TIME, dtype=np.int64)
        self._out = np.empty(N_FLOAT)
        self.stale_bars = 0

    @property
    def symbols(self) -> list[str]:
        return list(self._index)

    def state_bytes(self, symbol: str | None = None) -> int:
        """Bytes of state one symbol holds (the same for every symbol)."""
        if symbol is not None and symbol not in self._index:
            raise KeyError(f"no state for symbol {symbol!r}")
        return self._state.itemsize * STATE_SLOTS + self._last_ts.itemsize

    def _slot(self, symbol: str) -> int:
        i = self._index.get(symbol)
        if i is None:
            i = len(self._index)
            if i == len(self._last_ts):
                self._state = np.concatenate([self._state, np.zeros_like(self._state)])
                self._last_ts = np.concatenate(
                    [self._last_ts, np.full(len(self._last_ts), NO_TIME, dtype=np.int64)]
                )
            self._index[symbol] = i
        return i

    def update(self, bar: Mapping) -> dict[str, float] | None:
        """Fold one bar of one symbol; its features, or None for a replayed/late bar."""
        o, h, low, c, v = check_bar(bar)
        ts = _ns(bar["event_timestamp"])
        symbol = bar["symbol"]
        if symbol is None or symbol != symbol:  # None or NaN
            raise InvalidBarsError(f"bar at {bar['event_timestamp']} has no symbol")
        i = self._slot(symbol)
        day = calendar.session_code(ts, self.frequency.intraday)
        if not update_one(self._state, self._last_ts, i, ts, o, h, low, c, v, day, self._out, _ALL):
            self.stale_bars += 1
            return None
        frequency.annualise(self._out, self.frequency)
        features = dict(zip(FLOAT_NAMES, self._out.tolist(), strict=True))
        features.update(calendar.calendar_row(day))
        return features

    def update_arrays(
        self,
        symbols: np.ndarray,
        event_ns: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> FoldedBars:
        """The micro-batch path without pandas: parallel arrays in (event times as int64 UTC
        nanoseconds), folded bars out as arrays. Same semantics as `update_many`."""
        prices = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
        ts = np.asarray(event_ns, dtype=np.int64)
        if not _usable(prices) or (ts == NO_TIME).any() or pd.isna(symbols).any():
            frame = pd.DataFrame(dict(zip(PRICE_FIELDS, prices, strict=True)))
            frame.insert(0, "symbol", symbols)
            frame.insert(1, "event_timestamp", pd.to_datetime(np.asarray(event_ns), utc=True))
            raise_on_problems(frame)
        slot = self._slot
        slots = np.fromiter((slot(s) for s in symbols), dtype=np.int64, count=len(symbols))
        # Symbols are independent: fold each symbol's bars together, in event-time order (stable
        # for ties, so the first of two equal-time bars wins); a symbol's state stays in cache.
        order = np.lexsort((ts, slots))
        slots, ts = slots[order], ts[order]
        session = calendar.session_codes_of(ts, self.frequency.intraday)
        out = np.empty((len(order), N_FLOAT))
        ordered = [p[order] for p in prices]
        accepted = run_rows(self._state, self._last_ts, slots, ts, *ordered, session, out, _ALL)
        frequency.annualise(out, self.frequency)
        n_stale = len(accepted) - int(accepted.sum())
        if n_stale:
            self.stale_bars += n_stale
            out, session, order = out[accepted], session[accepted], order[accepted]
        return FoldedBars(rows=order, floats=out, days=session)

    def update_many(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Fold a micro-batch of bars of many symbols (any row order: each symbol's bars are
        folded in event-time order).

        Returns one row per folded bar, grouped by symbol in time order (`symbol,
        event_timestamp` + features, catalog order); replayed/late bars, including repeats
        inside the batch, are left out and counted.
        """
        check_columns(bars)
        raise_on_problems(bars)
        stamps = utc_timestamps(bars["event_timestamp"])
        folded = self.update_arrays(
            bars["symbol"].to_numpy(),
            nanoseconds(stamps),
            *(bars[col].to_numpy() for col in PRICE_FIELDS),
        )
        return feature_frame(
            bars["symbol"].to_numpy()[folded.rows],
            stamps.iloc[folded.rows],
            folded.floats,
            FLOAT_NAMES,
            folded.days,
            few_days=True,
        )


@dataclass(frozen=True)
class FoldedBars:
    """Result of `update_arrays`: the input positions of the folded bars (processing order), their
    float features (columns `FLOAT_NAMES`) and session codes (`calendar.calendar_row(code)`
    gives the calendar features)."""

    rows: np.ndarray
    floats: np.ndarray
    days: np.ndarray

    names = FLOAT_NAMES


def _usable(prices: list[np.ndarray]) -> bool:
    *ohlc, volume = prices
    return all((p > 0).all() and np.isfinite(p).all() for p in ohlc) and bool(
        (volume >= 0).all() and np.isfinite(volume).all()
    )


# The micro-batch path is a method of the same state holder; this name is kept for callers that
# want to say which path they use.
OnlineFeaturesBatch = OnlineFeatures
