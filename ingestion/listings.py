"""Source `listings`: S&P 500 constituents (GICS sector) + NASDAQ listings -> `listings`.

Provenance (data directory, ODC-PDDL-1.0): `datasets/s-and-p-500-companies/constituents.csv`
(Wikipedia "List of S&P 500 companies", snapshot 2026-08-08) and
`datasets/nasdaq-listings/nasdaq-listed-symbols.csv` (NASDAQ Trader nasdaqlisted.txt; its trailer
line "File Creation Time: MMDDYYYYHH:MM" dates the snapshot).

One row per symbol, combining both files: name/sector/sub_industry/date_added from the S&P file,
exchange "NASDAQ" and is_etf from the NASDAQ file. Both contributing rows count as loaded. The
two trailer lines fail `required_fields` and NASDAQ test issues (`Test Issue` = Y, not real
securities) fail `test_issue`; both are quarantined, not dropped.

event_timestamp is the snapshot time: these are *today's* attributes, so a point-in-time join
at an older date correctly does not see them (using them historically would be look-ahead and
survivorship bias). The Feast view `listings` serves them online.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_str
from ingestion.context import SourceContext
from ingestion.rules import equals, required

SP500_PATH = "datasets/s-and-p-500-companies/constituents.csv"
NASDAQ_PATH = "datasets/nasdaq-listings/nasdaq-listed-symbols.csv"
# datasets/s-and-p-500-companies @ 56509dd80619, committed 2026-08-08 (the data README).
SP500_SNAPSHOT = pd.Timestamp("2026-08-08T00:00:00Z")
_TRAILER = re.compile(r"File Creation Time:\s*(\d{8})(\d{2}):(\d{2})")


def _nasdaq_snapshot(symbols: pd.Series) -> pd.Timestamp | None:
    for text in symbols.dropna().astype(str).tail(5):
        m = _TRAILER.search(text)
        if m:
            local = pd.Timestamp(f"{m[1][4:]}-{m[1][:2]}-{m[1][2:4]} {m[2]}:{m[3]}")
            return local.tz_localize("America/New_York").tz_convert("UTC")
    return None


def _read(ctx: SourceContext, rel: str, cols: tuple[str, ...]) -> files.FileRead:
    path = files.resolve(ctx.data_file(rel), ctx.cache_dir / "files")
    return files.read_table(path, {c: pa.string() for c in cols}, required=cols)


def _combine(rows: pd.DataFrame) -> pd.DataFrame:
    """One listing per symbol from the accepted S&P and NASDAQ rows."""
    sp = rows[rows["_file"] == "sp500"].set_index("symbol")
    nq = rows[rows["_file"] == "nasdaq"].set_index("symbol")
    symbols = sp.index.union(nq.index)
    sp, nq = sp.reindex(symbols), nq.reindex(symbols)
    in_sp, in_nq = sp["_file"].notna(), nq["_file"].notna()
    source = np.where(
        in_sp & in_nq, "listings:sp500+nasdaq", np.where(in_sp, "listings:sp500", "listings:nasdaq")
    )
    out = pd.DataFrame(
        {
            "symbol": symbols,
            "name": sp["name"].where(in_sp, nq["name"]).to_numpy(),
            "sector": sp["sector"].to_numpy(),
            "sub_industry": sp["sub_industry"].to_numpy(),
            "exchange": nq["exchange"].to_numpy(),
            "is_etf": nq["is_etf"].eq(True).to_numpy(),
            "date_added": sp["date_added"].to_numpy(),
            "event_timestamp": np.maximum(
                sp["event_timestamp"].fillna(pd.Timestamp.min.tz_localize("UTC")),
                nq["event_timestamp"].fillna(pd.Timestamp.min.tz_localize("UTC")),
            ).to_numpy(),
            "source": source,
        }
    )
    return out


def extract(ctx: SourceContext) -> list[Batch]:
    sp_cols = ("Symbol", "Security", "GICS Sector", "GICS Sub-Industry", "Date added")
    nq_cols = ("Symbol", "Company Name", "Test Issue", "ETF")
    sp_read, nq_read = _read(ctx, SP500_PATH, sp_cols), _read(ctx, NASDAQ_PATH, nq_cols)
    sp_raw = sp_read.table.select(list(sp_cols)).to_pandas()
    nq_raw = nq_read.table.select(list(nq_cols)).to_pandas()
    nq_snapshot = _nasdaq_snapshot(nq_raw["Symbol"])
    sp_frame = pd.DataFrame(
        {
            "symbol": to_str(sp_raw["Symbol"]),
            "name": to_str(sp_raw["Security"]),
            "sector": to_str(sp_raw["GICS Sector"]),
            "sub_industry": to_str(sp_raw["GICS Sub-Industry"]),
            "exchange": None,
            "is_etf": False,
            "date_added": pd.to_datetime(sp_raw["Date added"], errors="coerce")
            .dt.strftime("%Y-%m-%d")
            .astype(object),
            "event_timestamp": SP500_SNAPSHOT,
            "test_issue": False,
            "_file": "sp500",
        }
    )
    nq_frame = pd.DataFrame(
        {
            "symbol": to_str(nq_raw["Symbol"]),
            "name": to_str(nq_raw["Company Name"]),
            "sector": None,
            "sub_industry": None,
            "exchange": "NASDAQ",
            "is_etf": nq_raw["ETF"].eq("Y"),
            "date_added": None,
            "event_timestamp": nq_snapshot if nq_snapshot is not None else pd.NaT,
            "test_issue": nq_raw["Test Issue"].eq("Y"),
            "_file": "nasdaq",
        }
    )
    raw = pd.concat(
        [sp_raw.assign(_file="sp500"), nq_raw.assign(_file="nasdaq")], ignore_index=True
    )
    frame = pd.concat([sp_frame, nq_frame], ignore_index=True)
    rules = [
        required(["symbol", "name", "event_timestamp"]),
        equals("test_issue", True, "test_issue"),
    ]
    return [
        Batch(
            "listings",
            frame,
            raw,
            rules,
            key=("symbol", "_file"),
            finalize=_combine,
            check_time_order=False,
            malformed=sp_read.malformed + nq_read.malformed,
        )
    ]
