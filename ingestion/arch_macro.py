"""Source `arch_macro`: VIX close and WTI spot from the PyPI `arch` package -> `macro`.

Why: a fresh clone has no data directory, yet the market-context features need VIX and oil.
`arch` ships `data/vix/vix.csv.gz` (CBOE VIX close, 2014-01-03..2019-01-03, "." for missing) and
`data/wti/wti.csv.gz` (FRED DCOILWTICO, the EIA Cushing WTI spot series, 1986-2019, "." on
holidays). With a data directory the `vix_oil` source (full CBOE history, EIA WTI and Brent) loads
the same series and this one is skipped, so a series never mixes two vendors.

Knowledge time (event_timestamp): the same rules as `vix_oil` (ingestion.timestamps): VIX close
of session D at D's XNYS close + 15 minutes; WTI of date D by EIA's publication (the next US
business day, so never visible to D's own close). Missing values ("." placeholders) are quarantined under `required_fields`.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ingestion import files
from ingestion.arch_indices import arch_data_dir
from ingestion.batch import Batch
from ingestion.coerce import to_float
from ingestion.context import SourceContext
from ingestion.rules import finite, positive, required
from ingestion.timestamps import eia_spot_known_utc, vix_close_utc

SOURCE = "arch_macro:arch"
FILES = {"VIX": ("vix/vix.csv.gz", "vix"), "WTI": ("wti/wti.csv.gz", "DCOILWTICO")}


def skip_reason(ctx: SourceContext) -> str | None:
    if ctx.has_data_dir:
        return "the data directory's vix_oil source loads VIX and WTI (one vendor per series)"
    return None


def knowledge_time(series: str, dates: pd.Series) -> pd.Series:
    """When the value of `series` dated D became public (see the module docstring)."""
    if series == "VIX":
        return vix_close_utc(dates, fmt="%m/%d/%Y")
    return eia_spot_known_utc(dates, fmt="%m/%d/%Y")


def _series(series: str) -> Batch:
    rel, column = FILES[series]
    types = {"Date": pa.string(), column: pa.string()}
    read = files.read_table(arch_data_dir() / rel, types, required=("Date", column))
    raw = read.table.select(["Date", column]).to_pandas()
    value = to_float(pd.to_numeric(raw[column].str.strip(), errors="coerce"))
    frame = pd.DataFrame(
        {
            "series": series,
            "event_timestamp": knowledge_time(series, raw["Date"].str.strip()),
            "value": value,
            "source": SOURCE,
        },
        index=raw.index,
    )
    rules = [required(["event_timestamp", "value"]), finite(["value"])]
    if series == "VIX":
        rules.append(positive(["value"], "value_not_positive"))
    return Batch("macro", frame, raw, rules, malformed=read.malformed)


def extract(ctx: SourceContext) -> list[Batch]:
    return [_series(name) for name in FILES]
