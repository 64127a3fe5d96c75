"""Mapping of daily OHLCV files onto the `bars` table (shared by every daily-bar source).

Why shared: all_stocks_5yr, the arch index files, the LEAN daily file, bokeh-sampledata and
Alpha Vantage differ only in column names, date format, symbol naming and price basis; the
mapping, the knowledge-time stamp and the bar rules must be the same for all of them.

Knowledge time: a bar dated D is known at the actual XNYS close of session D
(`finfeast.sessions`, early closes included). A date that parses but is no XNYS session is
quarantined as `not_a_session` (no stamp is guessed for it).

`price_basis` is declared by the source and stored with every row: `as_traded` (raw prices as
they printed) or `split_adjusted_as_of:YYYY-MM-DD` (earlier prices divided by every split up to
that date, as all_stocks_5yr delivers them).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ingestion.batch import Batch
from ingestion.coerce import to_float, to_str
from ingestion.rules import bar_rules
from ingestion.timestamps import parse_dates, session_close_utc

PRICE_TYPES = {c: pa.float64() for c in ("open", "high", "low", "close", "volume")}
AS_TRADED = "as_traded"


def split_adjusted_as_of(day: str) -> str:
    """The basis label of prices split-adjusted as of `day` (YYYY-MM-DD)."""
    pd.Timestamp(day)  # fails loudly on a malformed date
    return f"split_adjusted_as_of:{day}"


def bars_batch(
    raw: pd.DataFrame,
    symbol: pd.Series,
    date: pd.Series,
    prices: dict[str, str],
    asset_class: pd.Series | str,
    date_format: str | None = "%Y-%m-%d",
    malformed: list[str] | None = None,
    price_basis: str = AS_TRADED,
) -> Batch:
    """A `bars` batch from a raw frame; `prices` maps open/high/low/close/volume -> raw column."""
    frame = pd.DataFrame(
        {
            "symbol": to_str(symbol),
            "trade_date": parse_dates(date, fmt=date_format),
            "event_timestamp": session_close_utc(date, fmt=date_format),
            **{canon: to_float(raw[col]) for canon, col in prices.items()},
            "asset_class": asset_class,
            "price_basis": price_basis,
        },
        index=raw.index,
    )
    return Batch("bars", frame, raw, bar_rules(), malformed=list(malformed or []))
