"""Corporate actions for the feature engine: the `ActionBook` and the per-bar price factors.

Why: bars are stored as traded (or on a declared `split_adjusted_as_of:DATE` basis). A feature at
bar t must see earlier prices adjusted for the actions whose ex-date is at or before t, and never
for later ones. Back-adjusting the whole history (a vendor's adjusted close) uses a basis known
only at the end of the file; instead the engine keeps each symbol's state on the basis of its last
bar and, before folding the first bar at or after an action's knowledge time (the ex-date's XNYS
session open), multiplies every price-like state slot by the action's factor (one state
transformation per family, declared with the family's state layout: `primitives.Layout`).

Factors follow the `corporate_actions` table (docs/architecture.md): `split_price_factor` =
1/split_ratio and `dividend_price_factor` = 1 - dividend/previous close, both "multiply earlier
prices by it". Level families use the split factor, return families split x dividend (total
return); volumes are divided by the split factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError

ACTIONS_TABLE = "corporate_actions"
ACTION_COLUMNS = ("symbol", "ex_date", "event_timestamp", "split_price_factor")
AS_TRADED = "as_traded"
SPLIT_ADJUSTED_AS_OF = "split_adjusted_as_of:"
NEVER = np.iinfo(np.int64).max


def basis_date(basis: str | None) -> pd.Timestamp | None:
    """The as-of date of a `split_adjusted_as_of:YYYY-MM-DD` basis; None for as traded."""
    if basis is None or (isinstance(basis, float) and np.isnan(basis)) or basis == AS_TRADED:
        return None
    if isinstance(basis, str) and basis.startswith(SPLIT_ADJUSTED_AS_OF):
        try:
            return pd.Timestamp(basis[len(SPLIT_ADJUSTED_AS_OF) :], tz="UTC")
        except ValueError as exc:
            raise FinfeastError(f"price basis {basis!r}: bad date") from exc
    raise FinfeastError(
        f"unknown price basis {basis!r}: expected {AS_TRADED!r} or "
        f"'{SPLIT_ADJUSTED_AS_OF}YYYY-MM-DD'"
    )


def basis_by_symbol(bars: pd.DataFrame) -> dict[str, str]:
    """{symbol: price_basis} of bars that carry a `price_basis` column (one basis per symbol)."""
    if "price_basis" not in bars.columns:
        return {}
    pairs = bars[["symbol", "price_basis"]].drop_duplicates()
    mixed = pairs["symbol"][pairs["symbol"].duplicated()].unique()
    if len(mixed):
        raise FinfeastError(
            f"bars of {len(mixed)} symbol(s) mix price bases (e.g. {mixed[0]}): a series must "
            "keep one basis"
        )
    return dict(zip(pairs["symbol"], pairs["price_basis"].astype(str), strict=True))


@dataclass(frozen=True, eq=False)
class ActionBook:
    """Per-symbol actions sorted by knowledge time, as flat arrays (symbol s owns rows
    `offsets[k] : offsets[k+1]` where k = `symbols.index(s)`).

    `knowledge_ns`: the time an action becomes known (UTC ns, the ex-date's session open);
    `split_factor` and `dividend_factor`: multiply earlier prices by them (1.0 = none).
    """

    symbols: tuple[str, ...]
    offsets: np.ndarray
    knowledge_ns: np.ndarray
    split_factor: np.ndarray
    dividend_factor: np.ndarray

    @classmethod
    def empty(cls) -> ActionBook:
        return cls((), np.zeros(1, np.int64), *_empty_arrays())

    @classmethod
    def from_frame(
        cls, actions: pd.DataFrame | None, basis_by_symbol: Mapping[str, str] | None = None
    ) -> ActionBook:
        """Book of the `corporate_actions` table (columns `symbol, ex_date, event_timestamp,
        split_price_factor, dividend_price_factor`; a missing dividend column = no dividends).

        A series on a `split_adjusted_as_of:DATE` basis already holds the splits with ex-date on
        or before DATE: their split factor is dropped (set to 1), their dividend factor kept (the
        basis is not dividend-adjusted). Actions that change nothing are left out.
        """
        if actions is None or actions.empty:
            return cls.empty()
        missing = [c for c in ACTION_COLUMNS if c not in actions.columns]
        if missing:
            raise FinfeastError(f"corporate actions lack column(s) {', '.join(missing)}")
        frame = pd.DataFrame(
            {
                "symbol": actions["symbol"].astype(str).to_numpy(),
                "ex_date": pd.to_datetime(actions["ex_date"], utc=True),
                "knowledge": pd.DatetimeIndex(pd.to_datetime(actions["event_timestamp"], utc=True))
                .as_unit("ns")
                .asi8,
                "split": actions["split_price_factor"].astype("float64").to_numpy(),
                "dividend": (
                    actions["dividend_price_factor"].astype("float64").to_numpy()
                    if "dividend_price_factor" in actions.columns
                    else np.ones(len(actions))
                ),
            }
        )
        frame["split"] = frame["split"].fillna(1.0)
        frame["dividend"] = frame["dividend"].fillna(1.0)
        bad = ~((frame["split"] > 0) & (frame["dividend"] > 0)) | (frame["knowledge"] == NEVER)
        if bad.any():
            first = frame[bad].iloc[0]
            raise FinfeastError(
                f"{int(bad.sum())} corporate action(s) with a non-positive factor, e.g. "
                f"{first['symbol']} {first['ex_date']}"
            )
        for symbol, basis in (basis_by_symbol or {}).items():
            as_of = basis_date(basis)
            if as_of is not None:
                inside = (frame["symbol"] == symbol) & (frame["ex_date"] <= as_of)
                frame.loc[inside, "split"] = 1.0
        frame = frame[(frame["split"] != 1.0) | (frame["dividend"] != 1.0)]
        frame = frame.sort_values(["symbol", "knowledge"], kind="stable")
        if frame.duplicated(["symbol", "knowledge"]).any():
            # two rows known at the same instant act as one: their factors multiply
            frame = frame.groupby(["symbol", "knowledge"], as_index=False, sort=True).agg(
                split=("split", "prod"), dividend=("dividend", "prod")
            )
        symbols, counts = np.unique(frame["symbol"].to_numpy(), return_counts=True)
        return cls(
            tuple(str(s) for s in symbols),
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            frame["knowledge"].to_numpy(dtype=np.int64),
            frame["split"].to_numpy(dtype=np.float64),
            frame["dividend"].to_numpy(dtype=np.float64),
        )

    @cached_property
    def _index(self) -> dict[str, int]:
        return {s: k for k, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return int(self.knowledge_ns.size)

    def span(self, symbol: str) -> tuple[int, int]:
        """(start, end) rows of `symbol`'s actions (start == end when it has none)."""
        k = self._index.get(symbol, -1)
        if k < 0:
            return 0, 0
        return int(self.offsets[k]), int(self.offsets[k + 1])

    def spans(self, symbols: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Start and end rows per symbol, int64 arrays aligned with `symbols`."""
        pairs = [self.span(s) for s in symbols]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        start, end = np.array(pairs, dtype=np.int64).T
        return start.copy(), end.copy()

    def cursor(self, symbols: Iterable[str], last_ns: np.ndarray) -> EngineActions:
        """Engine arrays for symbol slots `symbols` whose last folded bars are at `last_ns`:
        each slot's next pending action is its first one known after its last bar (actions at or
        before it belong to the basis the state already has)."""
        start, end = self.spans(symbols)
        ptr = start.copy()
        for i in np.flatnonzero(end > start).tolist():  # symbols without actions: nothing to find
            ptr[i] += int(
                np.searchsorted(self.knowledge_ns[start[i] : end[i]], last_ns[i], side="right")
            )
        return EngineActions(self, ptr, end)

    def bar_factors(self, symbols: np.ndarray, ts: np.ndarray, total: bool = True) -> np.ndarray:
        """Per bar (rows sorted by symbol then time), the product of the factors of the actions
        the engine applies before folding it: those known after the symbol's previous bar and at
        or before this one (the first bar takes those known at or before it)."""
        out = np.ones(len(ts))
        if not len(self) or not len(ts):
            return out
        codes, uniq = pd.factorize(symbols)
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], len(ts)]
        factor = self.split_factor * (self.dividend_factor if total else 1.0)
        for lo, hi in zip(starts, ends, strict=True):
            a, b = self.span(str(uniq[codes[lo]]))
            if a == b:
                continue
            where = np.searchsorted(ts[lo:hi], self.knowledge_ns[a:b], side="left")
            keep = where < hi - lo
            np.multiply.at(out, lo + where[keep], factor[a:b][keep])
        return out


@dataclass(eq=False)
class EngineActions:
    """The book as the compiled engine reads it, aligned with the engine's symbol slots: per slot
    the next pending action's row (`ptr`), one past its last (`end`) and the knowledge time of the
    pending one (`next_ns`, NEVER when none): the engine tests `ts >= next_ns[i]` per bar, so a
    symbol without pending actions pays one comparison."""

    book: ActionBook
    ptr: np.ndarray
    end: np.ndarray
    next_ns: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.next_ns is None:
            pending = self.ptr < self.end
            self.next_ns = np.full(len(self.ptr), NEVER, dtype=np.int64)
            self.next_ns[pending] = self.book.knowledge_ns[self.ptr[pending]]

    def args(self) -> tuple[np.ndarray, ...]:
        """Arguments of `engine.run_rows` / `update_one` after `enabled`."""
        b = self.book
        return self.next_ns, self.ptr, self.end, b.knowledge_ns, b.split_factor, b.dividend_factor

    def reserve(self, n: int) -> None:
        """Room for `n` slots (the arrays grow, new slots with no action pending); the caller
        sets the slots it fills, as `OnlineFeatures.restore` does for the whole snapshot."""
        if n > len(self.ptr):
            extra = n - len(self.ptr)
            self.ptr = np.concatenate([self.ptr, np.zeros(extra, np.int64)])
            self.end = np.concatenate([self.end, np.zeros(extra, np.int64)])
            self.next_ns = np.concatenate([self.next_ns, np.full(extra, NEVER, np.int64)])

    def assign(self, i: int, symbol: str) -> None:
        """Slot `i` now holds `symbol` (fresh state): its first action is pending; the arrays
        grow (doubling) when `i` is past their end."""
        if i >= len(self.ptr):
            self.reserve(max(2 * len(self.ptr), i + 1))
        start, end = self.book.span(symbol)
        self.ptr[i], self.end[i] = start, end
        self.next_ns[i] = self.book.knowledge_ns[start] if start < end else NEVER


def _empty_arrays() -> tuple[np.ndarray, ...]:
    return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64)


def no_actions(n_slots: int) -> EngineActions:
    """Engine arrays with nothing pending for `n_slots` slots."""
    zeros = np.zeros(n_slots, np.int64)
    return EngineActions(ActionBook.empty(), zeros, zeros.copy())
