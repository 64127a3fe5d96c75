"""Source `vix_oil`: CBOE VIX daily OHLC and EIA WTI / Brent daily spot prices -> `macro`.

Provenance (data directory, all ODC-PDDL-1.0, byte-identical to the `datasets` GitHub org):
`datasets/finance-vix/vix-daily.csv` (CBOE VIX_History, 1990-), `datasets/oil-prices/wti-daily.csv`
(EIA RWTCd, Cushing) and `brent-daily.csv` (EIA RBRTEd).

Series and when each value is known (event_timestamp, no look-ahead; rules in
ingestion/timestamps.py): VIX, VIX_OPEN, VIX_HIGH, VIX_LOW at the Cboe close of the day, 15
minutes after the XNYS close (16:15 New York, 13:15 on early-close days; 16:15 on the 33 days Cboe
computed VIX while the NYSE was closed); the open is known earlier, but stamping the whole bar at
the close is safe. WTI and BRENT (EIA spot assessments): EIA republishes a day's spot prices the
next weekday that is not a federal holiday, 07:30-08:30 New York, so a price dated D is stamped
at the XNYS close of the first session on or after that day: never visible to D's own 16:00
close (a conservative rule: market participants may know the assessment on D, but this source is
EIA's). When two dates are published the same morning (the Friday before Columbus Day and the
Monday), the earlier-dated price is quarantined as `published_with_a_later_date`. Oil dates before the calendar (XNYS sessions in `finfeast.sessions` start 1990-01-02)
cannot be stamped and are quarantined as `outside_calendar`. VIX rows are
checked with the OHLC rules (the CBOE history has 47 real 1992-era rows where the open lies
outside [low, high]: quarantined). Oil prices may be negative (WTI settled at -36.98 on
2020-04-20, a real event), so oil rows are only required to be present and finite.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_float
from ingestion.context import SourceContext
from ingestion.rules import finite, ohlc, positive, required
from ingestion.timestamps import eia_spot_known_utc, parse_dates, vix_close_utc

VIX_PATH = "datasets/finance-vix/vix-daily.csv"
OIL = {
    "WTI": "datasets/oil-prices/wti-daily.csv",
    "BRENT": "datasets/oil-prices/brent-daily.csv",
}
OUTSIDE_CALENDAR = "outside_calendar"
# two dates whose prices EIA publishes on the same morning (e.g. the Friday before Columbus Day
# and the Monday itself, both published Tuesday) share one knowledge time; only the later-dated
# price is ever the latest known value, so the earlier one is quarantined under this rule
SAME_PUBLICATION = "published_with_a_later_date"
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
            "event_timestamp": vix_close_utc(raw["DATE"], fmt="%Y-%m-%d"),
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
    rel = OIL[series]
    path = files.resolve(ctx.data_file(rel), ctx.cache_dir / "files")
    read = files.read_table(path, {"Date": pa.string(), "Price": pa.float64()}, ("Date", "Price"))
    raw = read.table.select(["Date", "Price"]).to_pandas()
    frame = pd.DataFrame(
        {
            "series": series,
            "date": parse_dates(raw["Date"], fmt="%Y-%m-%d"),
            "event_timestamp": eia_spot_known_utc(raw["Date"], fmt="%Y-%m-%d"),
            "value": to_float(raw["Price"]),
            "source": "vix_oil:oil-prices",
        },
        index=raw.index,
    )
    rules = [
        required(["date", "value"]),
        (OUTSIDE_CALENDAR, lambda df: df["event_timestamp"].isna().to_numpy()),
        finite(["value"]),
        (SAME_PUBLICATION, _earlier_same_publication),
    ]
    return Batch("macro", frame, raw, rules, malformed=read.malformed)


def _earlier_same_publication(df: pd.DataFrame) -> np.ndarray:
    """Rows whose knowledge time a later-dated row of the same series shares."""
    order = df.sort_values("date", kind="stable")
    ts = order["event_timestamp"]
    dup = ts.duplicated(keep="last").to_numpy() & ts.notna().to_numpy()
    return pd.Series(dup, index=order.index).reindex(df.index).to_numpy()


def extract(ctx: SourceContext) -> list[Batch]:
    return [_vix(ctx), *(_oil(ctx, s) for s in OIL)]
