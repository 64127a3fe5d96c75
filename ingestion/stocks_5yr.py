"""Source `stocks_5yr`: S&P 500 equities daily OHLCV, 505 tickers, 2013-02-08 .. 2018-02-07.

Provenance: `daily/all_stocks_5yr.csv.gz` of the data directory (Kaggle "S&P 500 stock data" by
Cam Nugent, CNuge/kaggle-code, MIT; pulled from the IEX API). Tickers keep their names,
asset_class "equity". The file has 23 real defects (missing prices, OHLC inconsistencies) that
the bar rules quarantine.

Price basis: `split_adjusted_as_of:2018-02-07` (IEX chart data, split-adjusted as of the file
date, not dividend-adjusted: AAPL 2013-02-08 close 67.8542 = LEAN raw 474.98 / 7). So level
features of its tickers use a basis known only in 2018; ratio features (returns) do not depend
on it. The 505 tickers are the S&P 500 constituents of February 2018: a survivor universe
(`SURVIVOR_NOTE`, disclosed in the quality report and the run summary).

Knowledge time: the actual XNYS close of the session (`finfeast.sessions`, early closes
included). Priority: for the 12 LEAN symbols LEAN owns the whole series; these rows are
compared with LEAN after conversion to the as-traded basis and superseded.

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
from ingestion.daily_bars import PRICE_TYPES, bars_batch, split_adjusted_as_of

RELATIVE_PATH = "daily/all_stocks_5yr.csv.gz"
FILE_DATE = "2018-02-07"
PRICE_BASIS = split_adjusted_as_of(FILE_DATE)
SURVIVOR_NOTE = (
    "survivor universe: the 505 S&P 500 constituents of February 2018 (names that left the "
    "index before 2018 are absent); prices split-adjusted as of 2018-02-07, not dividend-"
    "adjusted: level features use a basis known only in 2018, ratio features do not depend on it"
)
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
            price_basis=PRICE_BASIS,
        )
    ]
