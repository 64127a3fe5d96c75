"""Source `lean_actions`: splits and cash dividends of the 12 LEAN symbols -> `corporate_actions`.

Provenance: `corporate_actions/lean_factor_files/*.csv` of the data directory (QuantConnect LEAN
@ 24863901 `Data/equity/usa/factor_files`, Apache-2.0; data README §7), one file per security,
named by its current ticker (the symbol, see ingestion/lean_maps.py: `googl.csv` is the class A
security whose LEAN history starts under `goog`).

Derivation (data README §7 and LEAN `CorporateFactorRow`): rows `date, price_factor,
split_factor, reference_price` are sorted by date; the factors of a trading day d are those of
the first row dated on or after d. So a change of factors between consecutive rows i and i+1 is
an event whose ex-date is the next XNYS session after row i's date, with
split_ratio = split_factor[i+1] / split_factor[i] (snapped to a simple fraction, see
`ingestion.actions.snap_ratio`), dividend_price_factor = price_factor[i] / price_factor[i+1]
and cash_dividend = (1 - dividend_price_factor) x reference_price[i] (the raw close of the day
before the ex-date). The sentinel last row (20501231, factors 1) closes the file.

Knowledge time: the ex-date's XNYS session open (the files carry no announcement dates; every
action is announced before its ex-date). rows read = the events found (one per factor change);
the rules of `ingestion.actions.action_rules` quarantine impossible ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finfeast import sessions
from finfeast.errors import FinfeastError
from ingestion.actions import actions_batch, snap_ratio
from ingestion.batch import Batch
from ingestion.context import SourceContext
from ingestion.lean_maps import FACTOR_DIR, read_factor_file

SOURCE = "lean_actions"


def events_from_factor_file(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per factor change: `date` (row i), `next_date`, the factors of rows i and i+1,
    `reference_price` (row i) and the derived `ex_date`, `split_ratio`, `dividend_price_factor`."""
    frame = frame.sort_values("date", kind="stable").reset_index(drop=True)
    nxt = frame.shift(-1)
    changed = (nxt["price_factor"] != frame["price_factor"]) | (
        nxt["split_factor"] != frame["split_factor"]
    )
    changed &= nxt["date"].notna()
    ev = frame[changed.to_numpy()].copy()
    ev["next_price_factor"] = nxt.loc[ev.index, "price_factor"]
    ev["next_split_factor"] = nxt.loc[ev.index, "split_factor"]
    ev["ex_date"] = next_session(ev["date"])
    ev["split_ratio"] = [
        snap_ratio(b / a) for a, b in zip(ev["split_factor"], ev["next_split_factor"], strict=True)
    ]
    ev["dividend_price_factor"] = ev["price_factor"] / ev["next_price_factor"]
    return ev.reset_index(drop=True)


def next_session(days: pd.Series) -> pd.Series:
    """The first XNYS session strictly after each naive date (NaT outside the calendar)."""
    session_dates = sessions.schedule().index.to_numpy(dtype="datetime64[ns]")
    values = days.to_numpy(dtype="datetime64[ns]")
    pos = np.searchsorted(session_dates, values, side="right")
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = ~np.isnat(values) & (pos < len(session_dates)) & (values >= session_dates[0])
    out[ok] = session_dates[pos[ok]]
    return pd.Series(out, index=days.index)


def extract(ctx: SourceContext) -> list[Batch]:
    folder = ctx.data_dir / FACTOR_DIR
    paths = sorted(folder.glob("*.csv"))
    if not paths:
        raise FinfeastError(f"input file not found: LEAN factor files in {folder}")
    parts = []
    for path in paths:
        ev = events_from_factor_file(read_factor_file(path))
        ev.insert(0, "symbol", path.stem.upper())
        ev.insert(1, "file", path.name)
        parts.append(ev)
    raw = pd.concat(parts, ignore_index=True)
    batch = actions_batch(
        raw,
        symbol=raw["symbol"],
        ex_date=raw["ex_date"],
        split_ratio=raw["split_ratio"],
        dividend_price_factor=raw["dividend_price_factor"],
        previous_close=raw["reference_price"],
        source=SOURCE,
    )
    batch.raw = raw.assign(
        date=raw["date"].dt.strftime("%Y-%m-%d"), ex_date=raw["ex_date"].dt.strftime("%Y-%m-%d")
    )
    return [batch]
