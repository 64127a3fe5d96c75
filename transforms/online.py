"""Streaming features: `OnlineFeatures` folds bars one at a time (or in micro-batches) into
per-symbol state and returns the bar-only features as of each bar, identical to
`compute_features` over the same history.

Arrival order decides (the lateness rule): each symbol's bars are folded in the order they
arrive, never re-sorted by time, and a bar at or before its symbol's last folded event time
changes no state and emits nothing: `update` returns None and `update_many` leaves it out of its
result; both count it in `stale_bars`. So the result does not depend on how a stream is cut into
micro-batches (a late bar is dropped whether it comes alone or with newer bars), and at-least-once
redelivery is harmless. Unusable bars (null/non-positive prices, negative volume) raise
InvalidBarsError before touching state.

Corporate actions: give the `ActionBook` (`OnlineFeatures(actions=book)` or `set_actions`) and
each symbol's state moves to the new price basis before its first bar at or after an action's
knowledge time, as in `compute_features(bars, actions=book)`.

Checkpoints: `snapshot(symbols)` returns bytes (format version, family code hashes, each symbol's
state row and last event time) and `restore(blob)` merges them back. `pickle` carries the same
header with the state as two arrays (out-of-band under protocol 5) plus the book. The pending
action of a restored symbol is found again from its last event time, so the book position needs
no storing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError
from finfeast.state_arrays import adopt
from transforms import frequency
from transforms.adjustments import ActionBook, EngineActions
from transforms.batch import PRICE_FIELDS, feature_frame, nanoseconds, utc_timestamps
from transforms.engine import (
    FLOAT_NAMES,
    KERNEL_FAMILIES,
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
SNAPSHOT_FORMAT = 1
_MAGIC = b"FFOS"


class SnapshotError(FinfeastError):
    """A snapshot blob that cannot be restored into this catalog (other format or definitions)."""


def family_hashes() -> dict[str, str]:
    """Code hash of every kernel family (catalog lineage): a snapshot restores only into the
    same definitions, since its state rows are laid out by them."""
    from transforms.catalog import FAMILIES

    return {name: FAMILIES[name].code_hash for name in KERNEL_FAMILIES}


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
    for EMA/Wilder-type ones) plus its last event time; `state_bytes()` reports it. A bar at or
    before its symbol's last event time changes nothing (late or replayed). The object pickles
    (a versioned header, checked on load, and the arrays), which the stream checkpoints use.

    >>> import pickle
    >>> import pandas as pd
    >>> feats = OnlineFeatures()
    >>> close_of = pd.Timestamp("2013-02-11 21:00", tz="UTC")  # Monday's NYSE close
    >>> def bar(day, close):
    ...     when = close_of + pd.Timedelta(days=day)
    ...     return {"symbol": "IBM", "event_timestamp": when, "open": close,
    ...             "high": close + 1, "low": close - 1, "close": close, "volume": 1e6}
    >>> for day, close in enumerate([100.0, 101.0, 99.0]):
    ...     out = feats.update(bar(day, close))
    >>> round(out["ret_1"], 6)  # 99 / 101 - 1
    -0.019802
    >>> feats.update(bar(1, 120.0)) is None  # at or before IBM's last bar: ignored
    True
    >>> feats.stale_bars
    1
    >>> again = pickle.loads(pickle.dumps(feats))
    >>> again.update(bar(3, 100.0))["ret_1"] == feats.update(bar(3, 100.0))["ret_1"]
    True
    """

    def __init__(
        self,
        capacity: int = 1024,
        actions: ActionBook | None = None,
        bar_frequency: frequency.BarFrequency | str | None = None,
    ) -> None:
        self.frequency = frequency.bar_frequency(bar_frequency)  # as compute_features'
        self._index: dict[str, int] = {}
        self._state = np.zeros((capacity, STATE_SLOTS))
        self._last_ts = np.full(capacity, NO_TIME, dtype=np.int64)
        self._out = np.empty(N_FLOAT)
        self.stale_bars = 0
        self.set_actions(actions)

    @property
    def symbols(self) -> list[str]:
        return list(self._index)

    @property
    def actions(self) -> ActionBook:
        return self._book

    def set_actions(self, actions: ActionBook | None) -> None:
        """Use `actions` from now on. Each known symbol's next pending action is its first one
        known after its last folded bar: an action known earlier is taken as already in its
        state's basis (give the book before the ex-date, as a live feed would)."""
        self._book = actions if actions is not None else ActionBook.empty()
        n = len(self._index)
        self._pending: EngineActions = self._book.cursor(self.symbols, self._last_ts[:n])

    def state_bytes(self, symbol: str | None = None) -> int:
        """Bytes of state one symbol holds (the same for every symbol)."""
        if symbol is not None and symbol not in self._index:
            raise KeyError(f"no state for symbol {symbol!r}")
        return self._state.itemsize * STATE_SLOTS + self._last_ts.itemsize

    def _reserve(self, n: int) -> None:
        """Room for `n` symbols (at least doubling, so appending one at a time stays O(1)
        amortised); new rows are empty states with no bar folded."""
        have = len(self._last_ts)
        if n > have:
            grow = max(n, 2 * have) - have
            self._state = np.concatenate([self._state, np.zeros((grow, STATE_SLOTS))])
            self._last_ts = np.concatenate([self._last_ts, np.full(grow, NO_TIME, np.int64)])

    def _slot(self, symbol: str) -> int:
        i = self._index.get(symbol)
        if i is None:
            i = len(self._index)
            self._reserve(i + 1)
            self._index[symbol] = i
            self._pending.assign(i, symbol)
        return i

    # --- checkpoints ---------------------------------------------------------------------------
    def _header(self, names: list[str]) -> dict[str, Any]:
        """What a snapshot's rows were computed by (checked by `_check_header` on restore)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "families": family_hashes(),
            "slots": STATE_SLOTS,
            "bar_seconds": self.frequency.seconds,
            "symbols": names,
        }

    def snapshot(self, symbols: Iterable[str] | None = None) -> bytes:
        """The state of `symbols` (None = all) as versioned bytes for `restore`."""
        names = self.symbols if symbols is None else list(symbols)
        unknown = [s for s in names if s not in self._index]
        if unknown:
            raise KeyError(f"no state for symbol(s) {unknown[:5]}")
        rows = np.array([self._index[s] for s in names], dtype=np.int64)
        header = json.dumps(self._header(names)).encode()
        state = np.ascontiguousarray(self._state[rows], dtype="<f8")
        last = np.ascontiguousarray(self._last_ts[rows], dtype="<i8")
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header, state.data, last.data])

    def restore(self, blob: bytes) -> list[str]:
        """Merge a `snapshot` into this state (its symbols replace their rows here; others are
        kept). Returns the restored symbols. SnapshotError when the blob is not a snapshot of
        this format and these family definitions."""
        header, state, last = _parse_snapshot(blob)
        return self._merge(header, state, last)

    def _merge(self, header: Mapping[str, Any], state: np.ndarray, last: np.ndarray) -> list[str]:
        seconds = header.get("bar_seconds", self.frequency.seconds)
        if seconds != self.frequency.seconds:
            raise SnapshotError(
                f"snapshot of {seconds}-second bars cannot restore a state of "
                f"{self.frequency.seconds}-second bars"
            )
        names = header["symbols"]
        # New symbols get slots in one growth (not doubling per symbol); every field of their
        # slots (state, last time, pending action) is set from the snapshot below.
        new = [s for s in dict.fromkeys(names) if s not in self._index]
        self._reserve(len(self._index) + len(new))
        self._pending.reserve(len(self._last_ts))
        for s in new:
            self._index[s] = len(self._index)
        rows = np.fromiter((self._index[s] for s in names), dtype=np.int64, count=len(names))
        self._state[rows] = state
        self._last_ts[rows] = last
        again = self._book.cursor(names, last)
        self._pending.ptr[rows] = again.ptr
        self._pending.end[rows] = again.end
        self._pending.next_ns[rows] = again.next_ns
        return list(names)

    def __getstate__(self) -> dict[str, Any]:
        """The whole state as a header and two fresh arrays (copies: the object may go on
        folding while they are written), plus the book. Pickled with protocol 5 and a
        `buffer_callback` (the stream checkpoints), the arrays travel out-of-band, uncopied."""
        n = len(self._index)
        return {
            "header": self._header(self.symbols),
            "state": self._state[:n].copy(),
            "last": self._last_ts[:n].copy(),
            "book": self._book,
            "stale_bars": self.stale_bars,
        }

    def __setstate__(self, saved: dict[str, Any]) -> None:
        if "snapshot" in saved:  # pickled before the header/arrays form (snapshot bytes)
            header, state, last = _parse_snapshot(saved["snapshot"])
        else:
            header, state, last = saved["header"], saved["state"], saved["last"]
            _check_header(header)
            n = len(header["symbols"])
            if state.shape != (n, STATE_SLOTS) or last.shape != (n,):
                raise SnapshotError(f"state arrays {state.shape}/{last.shape} for {n} symbols")
        self.__init__(  # type: ignore[misc]
            capacity=0, actions=saved["book"], bar_frequency=header.get("bar_seconds")
        )
        names = header["symbols"]
        if len(set(names)) == len(names):  # a fresh state: take the arrays over, no merge
            self._state = adopt(state, np.float64)
            self._last_ts = adopt(last, np.int64)
            self._index = {s: i for i, s in enumerate(names)}
            self.set_actions(self._book)
        else:
            self._merge(header, state, last)
        self.stale_bars = saved["stale_bars"]

    @classmethod
    def from_state(cls, saved: dict[str, Any]) -> OnlineFeatures:
        """The object whose `__getstate__()` gave `saved` (what unpickling does); its arrays
        are taken over when they are writable (see `adopt`)."""
        obj = cls.__new__(cls)
        obj.__setstate__(saved)
        return obj

    def update(self, bar: Mapping) -> dict[str, float] | None:
        """Fold one bar of one symbol; its features, or None for a replayed/late bar."""
        o, h, low, c, v = check_bar(bar)
        ts = _ns(bar["event_timestamp"])
        symbol = bar["symbol"]
        if symbol is None or symbol != symbol:  # None or NaN
            raise InvalidBarsError(f"bar at {bar['event_timestamp']} has no symbol")
        i = self._slot(symbol)
        day = calendar.session_code(ts, self.frequency.intraday)
        args = (self._state, self._last_ts, i, ts, o, h, low, c, v, day, self._out, _ALL)
        if not update_one(*args, *self._pending.args()):
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
        # Symbols are independent: fold each symbol's bars together (its state stays in cache),
        # in ARRIVAL order (a stable sort by symbol only): a bar not newer than the last folded
        # one is dropped, whatever else shares its batch.
        order = np.argsort(slots, kind="stable")
        slots, ts = slots[order], ts[order]
        session = calendar.session_codes_of(ts, self.frequency.intraday)
        out = np.empty((len(order), N_FLOAT))
        ordered = [p[order] for p in prices]
        accepted = run_rows(
            self._state,
            self._last_ts,
            slots,
            ts,
            *ordered,
            session,
            out,
            _ALL,
            *self._pending.args(),
        )
        n_stale = len(accepted) - int(accepted.sum())
        if n_stale:
            self.stale_bars += n_stale
            out, session, order = out[accepted], session[accepted], order[accepted]
        # after dropping the stale rows: their part of `out` was never written (np.empty), and
        # scaling whatever bytes it held overflowed (a RuntimeWarning in every late batch)
        frequency.annualise(out, self.frequency)
        return FoldedBars(rows=order, floats=out, days=session)

    def update_many(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Fold a micro-batch of bars of many symbols, each symbol's bars in arrival (row) order.

        Returns one row per folded bar, grouped by symbol in arrival order (`symbol,
        event_timestamp` + features, catalog order); replayed/late bars (at or before the
        symbol's last folded bar, including an earlier row of the same batch) are left out and
        counted.
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


def _check_header(header: Mapping[str, Any]) -> None:
    """SnapshotError unless the rows were laid out by this format and these families."""
    if header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(
            f"snapshot format {header.get('format')!r}, this code reads {SNAPSHOT_FORMAT}"
        )
    ours = family_hashes()
    theirs = header.get("families", {})
    changed = sorted(f for f in set(ours) | set(theirs) if ours.get(f) != theirs.get(f))
    if changed or header.get("slots") != STATE_SLOTS:
        raise SnapshotError(
            f"snapshot made by other family definitions ({', '.join(changed) or 'state layout'}"
            " changed): rebuild the state from history instead of restoring it"
        )


def _parse_snapshot(blob: bytes) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    if not isinstance(blob, (bytes, bytearray, memoryview)) or bytes(blob[:4]) != _MAGIC:
        raise SnapshotError("not an OnlineFeatures snapshot (bad magic bytes)")
    blob = bytes(blob)
    (size,) = struct.unpack("<I", blob[4:8])
    try:
        header = json.loads(blob[8 : 8 + size])
    except ValueError as exc:
        raise SnapshotError(f"corrupt snapshot header: {exc}") from exc
    _check_header(header)
    n = len(header["symbols"])
    body = memoryview(blob)[8 + size :]
    if len(body) != n * (STATE_SLOTS * 8 + 8):
        raise SnapshotError(f"truncated snapshot: {len(body)} bytes for {n} symbols")
    state = np.frombuffer(body[: n * STATE_SLOTS * 8], dtype="<f8").reshape(n, STATE_SLOTS)
    last = np.frombuffer(body[n * STATE_SLOTS * 8 :], dtype="<i8")
    return header, state, last


def _usable(prices: list[np.ndarray]) -> bool:
    *ohlc, volume = prices
    return all((p > 0).all() and np.isfinite(p).all() for p in ohlc) and bool(
        (volume >= 0).all() and np.isfinite(volume).all()
    )


# The micro-batch path is a method of the same state holder; this name is kept for callers that
# want to say which path they use.
OnlineFeaturesBatch = OnlineFeatures
