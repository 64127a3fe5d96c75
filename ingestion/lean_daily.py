"""Source `lean_daily`: 12 US equities/ETFs daily OHLCV, 1998-01-02 .. 2021-03-31.

Provenance: `daily/lean_equity_daily_bars.csv.gz` of the data directory, converted losslessly
from QuantConnect LEAN (`Data/equity/usa/daily/*.zip`, Apache-2.0; AlgoSeek/QuantQuote data).

Price basis: `as_traded` (raw, unadjusted: splits show as jumps that the `corporate_actions`
rows of `lean_actions` explain). Knowledge time: the actual XNYS close of the session
(`finfeast.sessions`; 13:00 New York on early-close days); a non-session date is quarantined
as `not_a_session`.

Symbols: the LEAN folder ticker is mapped to the security's current ticker with the LEAN map
files (`corporate_actions/lean_map_files`, see ingestion/lean_maps.py): LEAN `goog` rows before
2014-04-03 are the class A security and load as GOOGL; from 2014-04-03 they are class C (GOOG).
SPY, QQQ, IWM, EEM, USO and BNO are asset_class "etf", the rest "equity".

Priority: LEAN is the first bar source, so it owns its 12 symbols for their whole series; the
all_stocks_5yr / bokeh rows of those symbols are compared with LEAN and superseded
(ingestion/priority.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.context import SourceContext
from ingestion.daily_bars import AS_TRADED, PRICE_TYPES, bars_batch
from ingestion.lean_maps import MAP_DIR, read_map_files, security_of
from ingestion.timestamps import parse_dates

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
    maps = read_map_files(ctx.data_dir / MAP_DIR)
    folder = raw["symbol"].fillna("").astype(str).str.strip()
    symbol = security_of(folder, parse_dates(raw["date"], "%Y-%m-%d"), maps)
    symbol[folder == ""] = None
    asset_class = np.where(symbol.isin(ETFS), "etf", "equity")
    return [
        bars_batch(
            raw,
            symbol=symbol,
            date=raw["date"],
            prices={c: c for c in ("open", "high", "low", "close", "volume")},
            asset_class=asset_class,
            malformed=read.malformed,
            price_basis=AS_TRADED,
        )
    ]
