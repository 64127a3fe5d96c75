"""LEAN map files and factor files: which security a LEAN data folder holds on a date.

Why: LEAN stores a security's history under the ticker it traded as at the time, and its map
files say which ticker that was: `googl.csv` says the security now called GOOGL (Google class A)
traded as `goog` until 2014-04-02, and `goog.csv` says the class C shares traded as `goocv`
until 2014-04-02 and as `goog` from 2014-04-03. So LEAN's `goog` rows before 2014-04-03 are
class A and belong to symbol GOOGL; from 2014-04-03 they are class C (GOOG).

Rule (documented in docs/ingestion.md): a symbol is the security's *current* ticker (the map
file's name, upper-cased), so one symbol's series is one security. A LEAN row (folder ticker t,
date d) belongs to the security whose map file lists t for the interval holding d (interval k
is (date of row k-1, date of row k], the first one open to the past). A row no map file claims
belongs to the security named like its folder, if any (LEAN's sample `bac` folder also holds
the months BAC still traded as `nb`), else to the upper-cased folder name. The factor file of a
security is the one named like its map file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError

MAP_DIR = "corporate_actions/lean_map_files"
FACTOR_DIR = "corporate_actions/lean_factor_files"


def read_map_files(folder: Path) -> dict[str, pd.DataFrame]:
    """security (upper-case current ticker) -> map rows (`date` naive datetime, `ticker` lower)."""
    if not folder.is_dir():
        raise FinfeastError(f"LEAN map files not found: {folder}")
    out = {}
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path, header=None, names=["date", "ticker", "exchange"], dtype=str)
        frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
        frame["ticker"] = frame["ticker"].str.strip().str.lower()
        out[path.stem.upper()] = frame.sort_values("date").reset_index(drop=True)
    return out


def security_of(folder: pd.Series, dates: pd.Series, maps: dict[str, pd.DataFrame]) -> pd.Series:
    """The security (current ticker) of each LEAN row given its folder ticker and naive date."""
    folder = folder.str.lower().to_numpy(dtype=object)
    days = dates.to_numpy(dtype="datetime64[ns]")
    out = np.full(len(folder), None, dtype=object)
    claims = np.zeros(len(folder), dtype=np.int8)
    for security, rows in maps.items():
        starts = [np.datetime64("NaT"), *rows["date"].to_numpy(dtype="datetime64[ns]")[:-1]]
        for start, end, ticker in zip(starts, rows["date"], rows["ticker"], strict=True):
            mask = (folder == ticker) & (days <= np.datetime64(end, "ns"))
            if not np.isnat(start):
                mask &= days > start
            out[mask] = security
            claims += mask
    if (claims > 1).any():  # intervals of one map file do not overlap: two files claim a row
        raise FinfeastError("LEAN map files claim the same folder and date for two securities")
    unclaimed = out == None  # noqa: E711 - elementwise on an object array
    fallback = np.array([str(t).upper() for t in folder], dtype=object)
    out[unclaimed] = fallback[unclaimed]
    return pd.Series(out, index=dates.index, dtype=object)


def read_factor_file(path: Path) -> pd.DataFrame:
    """A LEAN factor file: `date` (naive), `price_factor`, `split_factor`, `reference_price`."""
    frame = pd.read_csv(
        path,
        header=None,
        names=["date", "price_factor", "split_factor", "reference_price"],
        dtype={"date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"].str.strip(), format="%Y%m%d", errors="coerce")
    return frame
