"""Real bars for the catalog tests (TA-Lib, parity, look-ahead, catalog), read once per session.

Daily bars come from all_stocks_5yr (stamped at the 16:00 New York close, as ingestion does);
rows with a null price are dropped (ingestion quarantines them). Intraday bars come from LEAN's
minute trade bars, stamped at the end of each minute. Nothing is copied into the repo.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

# Large and small caps, high and low prices, a late listing (APTV: 44 bars) and a symbol with a
# real close-outside-range defect (LNT).
SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "GOOGL", "F", "AMD", "LNT", "APTV")


@lru_cache(maxsize=2)
def _all_daily(path: str) -> pd.DataFrame:
    raw = pd.read_csv(path).dropna(subset=["open", "high", "low", "close", "volume"])
    close_ny = pd.to_datetime(raw["date"]) + pd.Timedelta(hours=16)
    return pd.DataFrame(
        {
            "symbol": raw["Name"].to_numpy(),
            "event_timestamp": close_ny.dt.tz_localize("America/New_York")
            .dt.tz_convert("UTC")
            .to_numpy(),
            "open": raw["open"].astype("float64").to_numpy(),
            "high": raw["high"].astype("float64").to_numpy(),
            "low": raw["low"].astype("float64").to_numpy(),
            "close": raw["close"].astype("float64").to_numpy(),
            "volume": raw["volume"].astype("float64").to_numpy(),
        }
    )


def daily_bars(data_dir: Path, symbols: tuple[str, ...] | None = SYMBOLS) -> pd.DataFrame:
    """Canonical-shaped daily bars (a copy) of `symbols` (None = all 505 tickers)."""
    bars = _all_daily(str(data_dir / "daily" / "all_stocks_5yr.csv.gz"))
    if symbols is not None:
        bars = bars[bars["symbol"].isin(symbols)]
    return bars.reset_index(drop=True).copy()


def minute_bars(data_dir: Path) -> pd.DataFrame:
    """LEAN equity minute trade bars (several sessions per symbol), stamped at bar end."""
    raw = pd.read_csv(data_dir / "intraday" / "lean_equity_minute_trade_bars.csv.gz")
    start = pd.to_datetime(raw["timestamp"], utc=True)
    bars = raw.drop(columns=["timestamp"]).assign(event_timestamp=start + pd.Timedelta(minutes=1))
    bars["volume"] = bars["volume"].astype("float64")
    return bars[["symbol", "event_timestamp", "open", "high", "low", "close", "volume"]]
