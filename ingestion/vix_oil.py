"""Source `vix_oil`: CBOE VIX daily OHLC and EIA WTI / Brent daily spot prices -> `macro`.

Provenance (data directory, all ODC-PDDL-1.0, byte-identical to the `datasets` GitHub org):
`datasets/finance-vix/vix-daily.csv` (CBOE VIX_History, 1990-), `datasets/oil-prices/wti-daily.csv`
(EIA RWTCd, Cushing) and `brent-daily.csv` (EIA RBRTEd).

Series and when each value is known (event_timestamp, no look-ahead): VIX, VIX_OPEN, VIX_HIGH,
VIX_LOW at the 16:15 New York index close (the open is known earlier, but stamping the whole bar at
the close is safe); WTI at 14:30 New York (NYMEX settlement); BRENT at 16:30 London. VIX rows are
checked with the OHLC rules (the CBOE history has 47 real 1992-era rows where the open lies
outside [low, high]: quarantined). Oil prices may be negative (WTI settled at -36.98 on
2020-04-20, a real event), so oil rows are only required to be present and finite.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_float
from ingestion.context import SourceContext
from ingestion.rules import finite, ohlc, positive, required
from ingestion.timestamps import local_time_utc

VIX_PATH = "datasets/finance-vix/vix-daily.csv"
OIL = {
    "WTI": ("datasets/oil-prices/wti-daily.csv", 14, 30, "America/New_York"),
    "BRENT": ("datasets/oil-prices/brent-daily.csv", 16, 30, "Europe/London"),
}
VIX_SERIES = {"close": "VIX", "open": "VIX_OPEN", "high": "VIX_HIGH", "low": "VIX_LOW"}


def _melt_vix(wide: pd.DataFrame) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {"series": series, "event_timestamp": wide["event_timestamp"], "value": wide[col]},
            index=wide.index,
        )
        for col, series in VIX_SERIES.items()
    ]
    out = pd.concat(parts)
    out["source"] = "vix_oil:finance-vix"
    return out


def _vix(ctx: SourceContext) -> Batch:
    path = files.resolve(ctx.data_file(VIX_PATH), ctx.cache_dir / "files")
    cols = ("DATE", "OPEN", "HIGH", "LOW", "CLOSE")
    types = {"DATE": pa.string(), **{c: pa.float64() for c in cols[1:]}}
    read = files.read_table(path, types, required=cols)
    raw = read.table.select(list(cols)).to_pandas()
    frame = pd.DataFrame(
        {
            "event_timestamp": local_time_utc(raw["DATE"], 16, 15, fmt="%Y-%m-%d"),
            **{c.lower(): to_float(raw[c]) for c in cols[1:]},
        },
        index=raw.index,
    )
    rules = [
        required(["event_timestamp", "open", "high", "low", "close"]),
        positive(["open", "high", "low", "close"], "value_not_positive"),
        *ohlc(),
    ]
    return Batch(
        "macro",
        frame,
        raw,
        rules,
        key=("event_timestamp",),
        entity=(),
        finalize=_melt_vix,
        malformed=read.malformed,
    )


def _oil(ctx: SourceContext, series: str) -> Batch:
    rel, hour, minute, tz = OIL[series]
    path = files.resolve(ctx.data_file(rel), ctx.cache_dir / "files")
    read = files.read_table(path, {"Date": pa.string(), "Price": pa.float64()}, ("Date", "Price"))
    raw = read.table.select(["Date", "Price"]).to_pandas()
    frame = pd.DataFrame(
        {
            "series": series,
            "event_timestamp": local_time_utc(raw["Date"], hour, minute, tz, fmt="%Y-%m-%d"),
            "value": to_float(raw["Price"]),
            "source": "vix_oil:oil-prices",
        },
        index=raw.index,
    )
    rules = [required(["event_timestamp", "value"]), finite(["value"])]
    return Batch("macro", frame, raw, rules, malformed=read.malformed)


def extract(ctx: SourceContext) -> list[Batch]:
    return [_vix(ctx), *(_oil(ctx, s) for s in OIL)]
