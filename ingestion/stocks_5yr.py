"""Source `stocks_5yr`: S&P 500 equities daily OHLCV, 505 tickers, 2013-02-08 .. 2018-02-07.

Provenance: `daily/all_stocks_5yr.csv.gz` of the data directory (Kaggle "S&P 500 stock data" by
Cam Nugent, CNuge/kaggle-code, MIT; pulled from the IEX API). Unadjusted prices. Tickers keep
their names, asset_class "equity". The file has 23 real defects (missing prices, OHLC
inconsistencies) that the bar rules quarantine.

The location may be overridden with FINFEAST_STOCKS_5YR_URL (a path, or an HTTP(S) URL of a CSV
or Parquet file that the file connector downloads into the cache) and an expected checksum with
FINFEAST_STOCKS_5YR_SHA256.
"""

from __future__ import annotations

import os

import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.context import SourceContext
from ingestion.daily_bars import PRICE_TYPES, bars_batch

RELATIVE_PATH = "daily/all_stocks_5yr.csv.gz"
COLUMNS = ("date", "open", "high", "low", "close", "volume", "Name")


def extract(ctx: SourceContext) -> list[Batch]:
    location = ctx.data_file(RELATIVE_PATH, env="FINFEAST_STOCKS_5YR_URL")
    checksum = os.environ.get("FINFEAST_STOCKS_5YR_SHA256") or None
    path = files.resolve(location, ctx.cache_dir / "files", checksum)
    read = files.read_table(
        path, {"date": pa.string(), "Name": pa.string(), **PRICE_TYPES}, required=COLUMNS
    )
    raw = read.table.select(list(COLUMNS)).to_pandas()
    return [
        bars_batch(
            raw,
            symbol=raw["Name"],
            date=raw["date"],
            prices={c: c for c in ("open", "high", "low", "close", "volume")},
            asset_class="equity",
            malformed=read.malformed,
        )
    ]
