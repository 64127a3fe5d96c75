"""Source `lean_daily`: 12 US equities/ETFs daily OHLCV, 1998-01-02 .. 2021-03-31.

Provenance: `daily/lean_equity_daily_bars.csv.gz` of the data directory, converted losslessly
from QuantConnect LEAN (`Data/equity/usa/daily/*.zip`, Apache-2.0; AlgoSeek/QuantQuote data).
Raw, unadjusted prices (splits show as jumps). Symbols are upper-cased; SPY, QQQ, IWM, EEM, USO
and BNO are asset_class "etf", the rest "equity". Where a (symbol, session) also comes from
`stocks_5yr` (AAPL, AIG, BAC, IBM, GOOG, GOOGL 2013-2018), that source has priority and the LEAN
row is quarantined as `superseded` (see ingestion/priority.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_str
from ingestion.context import SourceContext
from ingestion.daily_bars import PRICE_TYPES, bars_batch

RELATIVE_PATH = "daily/lean_equity_daily_bars.csv.gz"
COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
ETFS = frozenset({"SPY", "QQQ", "IWM", "EEM", "USO", "BNO"})


def extract(ctx: SourceContext) -> list[Batch]:
    path = files.resolve(
        ctx.data_file(RELATIVE_PATH, env="FINFEAST_LEAN_DAILY_URL"), ctx.cache_dir / "files"
    )
    read = files.read_table(
        path, {"symbol": pa.string(), "date": pa.string(), **PRICE_TYPES}, required=COLUMNS
    )
    raw = read.table.select(list(COLUMNS)).to_pandas()
    symbol = to_str(raw["symbol"]).str.upper()
    asset_class = np.where(symbol.isin(ETFS), "etf", "equity")
    return [
        bars_batch(
            raw,
            symbol=symbol,
            date=raw["date"],
            prices={c: c for c in ("open", "high", "low", "close", "volume")},
            asset_class=asset_class,
            malformed=read.malformed,
        )
    ]
