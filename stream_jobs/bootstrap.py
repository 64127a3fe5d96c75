"""State of a symbol never seen by the stream, bootstrapped from offline history.

Why: a topic may hold less history than the longest window (252 bars), because retention dropped
its oldest messages or the topic started mid-history. Without history the first streamed features
of a new symbol would be warm-up values that batch never produces. Before a symbol's first bar is
folded, its offline bars strictly before that bar are folded through the same processor (the same
catalog kernels and River models, via `processor.warm`, which emits nothing), so its first
streamed features equal `compute_features` over the full history.

History sources: the real intraday file (`intraday`, minute bars stamped at their end, the
default: the market stream's bars), or the offline `bars` table (`bars`, for a daily-bar stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from finfeast.config import Settings

_BAR_FIELDS = ("open", "high", "low", "close", "volume")


class BarHistory:
    """Bars per symbol (sorted by event time), answering "every bar before t"."""

    def __init__(self, bars: pd.DataFrame, name: str = "history") -> None:
        self.name = name
        self._by_symbol: dict[str, tuple[np.ndarray, pd.DataFrame]] = {}
        if bars.empty:
            return
        bars = bars.sort_values(["symbol", "event_timestamp"], kind="stable")
        ms = pd.to_datetime(bars["event_timestamp"], utc=True).astype("datetime64[ms, UTC]")
        bars = bars.assign(event_time_ms=ms.astype("int64"))
        for symbol, g in bars.groupby("symbol", sort=False):
            self._by_symbol[str(symbol)] = (
                g["event_time_ms"].to_numpy(),
                g[["event_time_ms", *_BAR_FIELDS]].reset_index(drop=True),
            )

    def before(self, symbol: str, before_ms: int) -> list[dict[str, Any]]:
        """Bar messages (schema-v1 values) of `symbol` with event time < `before_ms`."""
        found = self._by_symbol.get(symbol)
        if found is None:
            return []
        ms, frame = found
        n = int(np.searchsorted(ms, before_ms, side="left"))
        if not n:
            return []
        rows = frame.iloc[:n].to_dict("records")
        for r in rows:
            r["symbol"] = symbol
            r["kind"] = "bar"
            r["event_time_ms"] = int(r["event_time_ms"])
        return rows


def intraday_history(settings: Settings) -> BarHistory | None:
    """The real minute bars (every symbol of the file), or None without a data directory."""
    from stream_jobs.replay import load_intraday_bars

    if settings.data_dir is None:
        return None
    try:
        bars = load_intraday_bars(settings.data_dir, symbols=None, start=None, end=None)
    except Exception as exc:  # noqa: BLE001 - no history means no bootstrap, said loudly
        logger.warning("no intraday history for bootstrap: {}", exc)
        return None
    return BarHistory(bars, "intraday")


def offline_bars_history(settings: Settings) -> BarHistory | None:
    """The offline `bars` table (daily bars stamped at the session close)."""
    from finfeast.offline import open_tables

    tables = open_tables(settings)
    if not tables.exists("bars"):
        return None
    bars = tables.read("bars", columns=["symbol", "event_timestamp", *_BAR_FIELDS])
    return BarHistory(bars, "bars")


class Bootstrapper:
    """Folds offline history into a processor for the symbols it has no state for."""

    def __init__(self, history: BarHistory | None) -> None:
        self.history = history
        self.bootstrapped: dict[str, int] = {}  # symbol -> bars folded from history

    @staticmethod
    def known(processor: Any, symbol: str) -> bool:
        """Has the processor folded a bar of `symbol` (live, replayed, restored or from history)?"""
        return symbol in processor.last_bar_ms

    def before_process(self, processor: Any, events: Sequence[Any]) -> int:
        """Warm `processor` with history for the new symbols of `events`; bars folded."""
        if self.history is None or not hasattr(processor, "last_bar_ms"):
            return 0
        from stream_jobs.consumer import Event

        first: dict[str, Any] = {}
        for e in events:
            v = e.value
            if v.get("kind") != "bar":
                continue
            s = v["symbol"]
            if self.known(processor, s):
                continue
            seen = first.get(s)
            if seen is None or v["event_time_ms"] < seen.value["event_time_ms"]:
                first[s] = e
        folded = 0
        for symbol, e in first.items():
            bars = self.history.before(symbol, e.value["event_time_ms"])
            self.bootstrapped[symbol] = len(bars)
            if not bars:
                continue
            processor.warm([Event(e.topic, e.partition, -1, b, 0) for b in bars])
            folded += len(bars)
            logger.info(
                "{}: bootstrapped {} from {} {} bars",
                processor.name,
                symbol,
                len(bars),
                self.history.name,
            )
        return folded
