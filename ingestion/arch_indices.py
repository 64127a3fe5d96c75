"""Source `arch_indices`: S&P 500 (^GSPC) and NASDAQ Composite (^IXIC) daily OHLCV, 1999-2018.

Provenance: the data files shipped in the PyPI package `arch` (NCSA licence):
`arch/data/sp500/sp500.csv.gz` and `arch/data/nasdaq/nasdaq.csv.gz` (Yahoo-style columns, dates
M/D/YYYY). The files are read directly (not through `arch.data.*.load()`, which imports the
whole package for ~2 s). asset_class "index"; the `Adj Close` column is not used.

Price basis: `as_traded` (index levels have no splits). Knowledge time: the actual XNYS close
of the session (`finfeast.sessions`, early closes included); a non-session date is quarantined
as `not_a_session`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pyarrow as pa

from finfeast.errors import FinfeastError
from ingestion import files
from ingestion.batch import Batch
from ingestion.context import SourceContext
from ingestion.daily_bars import bars_batch

INDICES = {"^GSPC": "sp500/sp500.csv.gz", "^IXIC": "nasdaq/nasdaq.csv.gz"}
COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume")


def arch_data_dir() -> Path:
    """The `arch/data` folder of the installed package, located without importing arch."""
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise FinfeastError("the PyPI package 'arch' is not installed (pip install arch)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def extract(ctx: SourceContext) -> list[Batch]:
    frames, malformed = [], []
    types = {"Date": pa.string(), **{c: pa.float64() for c in COLUMNS[1:]}}
    for symbol, rel in INDICES.items():
        read = files.read_table(arch_data_dir() / rel, types, required=COLUMNS)
        df = read.table.select(list(COLUMNS)).to_pandas()
        df.insert(0, "symbol", symbol)
        frames.append(df)
        malformed += read.malformed
    raw = pd.concat(frames, ignore_index=True)
    return [
        bars_batch(
            raw,
            symbol=raw["symbol"],
            date=raw["Date"],
            prices={c.lower(): c for c in COLUMNS[1:]},
            asset_class="index",
            date_format="%m/%d/%Y",
            malformed=malformed,
        )
    ]
