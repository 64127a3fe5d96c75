"""Mapping of daily OHLCV files onto the `bars` table (shared by the three daily-bar sources).

Why shared: all_stocks_5yr, the arch index files and the LEAN daily file differ only in column
names, date format and symbol naming; the mapping, the session-close timestamp and the bar rules
must be the same for all of them.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ingestion.batch import Batch
from ingestion.coerce import to_float, to_str
from ingestion.rules import bar_rules
from ingestion.timestamps import session_close_utc

PRICE_TYPES = {c: pa.float64() for c in ("open", "high", "low", "close", "volume")}


def bars_batch(
    raw: pd.DataFrame,
    symbol: pd.Series,
    date: pd.Series,
    prices: dict[str, str],
    asset_class: pd.Series | str,
    date_format: str | None = "%Y-%m-%d",
    malformed: list[str] | None = None,
) -> Batch:
    """A `bars` batch from a raw frame; `prices` maps open/high/low/close/volume -> raw column."""
    frame = pd.DataFrame(
        {
            "symbol": to_str(symbol),
            "event_timestamp": session_close_utc(date, fmt=date_format),
            **{canon: to_float(raw[col]) for canon, col in prices.items()},
            "asset_class": asset_class,
        },
        index=raw.index,
    )
    return Batch("bars", frame, raw, bar_rules(), malformed=list(malformed or []))
