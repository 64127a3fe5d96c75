"""Source `listings`: point-in-time S&P 500 membership and GICS sectors + NASDAQ listings.

Provenance (data directory, ODC-PDDL-1.0; data README §2 and §8):
- `datasets/s-and-p-500-companies-history/`: every distinct version of the Wikipedia "List of
  S&P 500 companies" table in the git history of `datasets/s-and-p-500-companies` (183 snapshots,
  2012-12-27 .. 2026-08-08) with `index.csv` (file, commit, author_date, committer_date).
- `datasets/s-and-p-500-companies/constituents.csv`: the current list (the same commit as the last
  snapshot); used as the only snapshot when the history directory is absent.
- `datasets/nasdaq-listings/nasdaq-listed-symbols.csv` (NASDAQ Trader nasdaqlisted.txt; its trailer
  line "File Creation Time: MMDDYYYYHH:MM", New York time, dates the snapshot).

Knowledge time (the publication rule): a snapshot is known from the LATER of its commit's author
and committer dates (it was public no later than that); the NASDAQ file from its creation time.
Between two snapshots the earlier one is the latest known list.

Table layout: change rows, key (symbol, event_timestamp). A symbol gets a row at the first
snapshot that lists it and at every later snapshot where its state changes: it leaves or
re-enters the list (`in_sp500` False/True, an explicit membership flag), or its name, sector,
sub-industry or date added changes; the NASDAQ snapshot adds `exchange`/`is_etf` the same way.
A row carries the whole state known at its time (attributes not restated are carried from the
symbol's earlier rows), so an as-of join at t returns exactly what was known at t. Nothing is
stamped before the first snapshot: before 2012-12-27 an as-of join finds no row (null, not a
guess); a NASDAQ-only symbol's row is stamped no earlier than the first S&P snapshot, so its
`in_sp500` = False is a known fact, never an assumption.

Normalisation and the Wikipedia-edit quirks (rules, not repairs from the future):
- Column names vary by year (`Name`/`Security`/`Company`, `Sector`/`GICS Sector`); they map to
  name, sector. Share classes use `.` or `-` (BRK.B / BRK-B): the canonical spelling is `.`, as
  in the bars. The symbol is the leading token of the field ("RVTY (previously PKI)" -> RVTY); a
  token that is not an upper-case ticker (e.g. a company name typed into the symbol cell) fails
  `symbol_format` and is quarantined, so that symbol is absent from that snapshot.
- Sector values are GICS sector names ("Telecommunications Services" is spelled as GICS does,
  "Telecommunication Services"). A value that is no sector name (the 2023-03-07 snapshot holds
  sub-industries in its Sector column; "Industries" in 2013-10-05) restates nothing: the
  symbol's earlier sector is carried.
- A row with missing trailing fields (no sector) still lists the symbol: it is a member, and
  its sector is carried from its earlier rows (null if never known). Extra trailing fields (an
  unquoted "Washington, D.C" headquarters in 2012) are ignored; the first fields are used.
- A symbol missing from one snapshot and back in the next (GOOG, GOOGL in 2014-2015) is taken
  literally: `in_sp500` = False between those two snapshots, because at that time the latest
  published list did not contain it, and repairing it would need the later snapshot (look-ahead).
  Its sector stays the last one published (leaving the list does not change a GICS sector).
- The same symbol twice in one snapshot: the second copy is quarantined as `duplicate_key`.
NASDAQ test issues (`Test Issue` = Y) fail `test_issue` and the two trailer lines fail
`required_fields`: quarantined, not dropped. The Feast view `listings` serves the latest row
online and the row known at t in point-in-time joins.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from finfeast.errors import FinfeastError
from ingestion import files
from ingestion.batch import Batch
from ingestion.coerce import to_str
from ingestion.context import SourceContext
from ingestion.rules import equals, required

SP500_PATH = "datasets/s-and-p-500-companies/constituents.csv"
HISTORY_DIR = "datasets/s-and-p-500-companies-history"
NASDAQ_PATH = "datasets/nasdaq-listings/nasdaq-listed-symbols.csv"
# datasets/s-and-p-500-companies @ 56509dd80619: author = committer date 2026-08-08T00:40:41Z.
SP500_SNAPSHOT = pd.Timestamp("2026-08-08T00:40:41Z")
_TRAILER = re.compile(r"File Creation Time:\s*(\d{8})(\d{2}):(\d{2})")
_TOKEN = re.compile(r"^\s*([^\s(]+)")
TICKER = re.compile(r"^[A-Z]{1,5}(\.[A-Z]{1,2})?$")
_COLUMNS = {  # header spellings over the years -> table column
    "Symbol": "symbol",
    "Name": "name",
    "Security": "name",
    "Company": "name",
    "Sector": "sector",
    "GICS Sector": "sector",
    "GICS Sub-Industry": "sub_industry",
    "Date added": "date_added",
}
# GICS sector names (MSCI/S&P), with the spelling variant seen in the snapshots mapped to one name
GICS_SECTORS = frozenset(
    {
        "Energy",
        "Materials",
        "Industrials",
        "Consumer Discretionary",
        "Consumer Staples",
        "Health Care",
        "Financials",
        "Information Technology",
        "Telecommunication Services",
        "Communication Services",
        "Utilities",
        "Real Estate",
    }
)
_SECTOR_SPELLING = {"Telecommunications Services": "Telecommunication Services"}
_SP_ATTRS = ("name", "sector", "sub_industry", "date_added")
_STATE = ("in_sp500", "name", "sector", "sub_industry", "date_added", "exchange", "is_etf")


def normalise_symbol(text: object) -> str | None:
    """Canonical ticker of a constituents cell: leading token, share class with `.`; None if the
    token is not an upper-case ticker (quarantined by `symbol_format`)."""
    if not isinstance(text, str):
        return None
    m = _TOKEN.match(text)
    if m is None:
        return None
    token = m[1].replace("-", ".")
    return token if TICKER.match(token) else None


def _sector(values: pd.Series) -> pd.Series:
    """GICS sector names; anything else (blank, a sub-industry in the Sector column of the
    2023-03-07 snapshot, "Industries" in 2013-10-05, "Airlines") restates no sector: null, and
    the symbol's earlier sector is carried."""
    names = to_str(values).replace(_SECTOR_SPELLING)
    return names.where(names.isin(GICS_SECTORS), None)


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


def _read_snapshot(path: Path) -> pd.DataFrame:
    """One constituents CSV (plain or gzip) as strings in table columns, tolerant of the ragged
    rows of early snapshots (short rows padded, extra trailing fields ignored)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise FinfeastError(f"{path}: unreadable constituents snapshot ({exc})") from exc
    if not rows:
        raise FinfeastError(f"{path}: empty constituents snapshot")
    header = [h.strip() for h in rows[0]]
    width = len(header)
    body = [(r + [""] * width)[:width] for r in rows[1:] if any(c.strip() for c in r)]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    keep = {h: _COLUMNS[h] for h in header if h in _COLUMNS}
    if "Symbol" not in keep:
        raise FinfeastError(f"{path}: no Symbol column in header {header}")
    out = frame[list(keep)].rename(columns=keep)
    for col in ("symbol", *_SP_ATTRS):
        if col not in out:
            out[col] = None
    return out[["symbol", *_SP_ATTRS]]


def _snapshots(ctx: SourceContext) -> list[tuple[str, pd.Timestamp, Path]]:
    """(name, knowledge time, file) of every constituents snapshot, in time order."""
    index = Path(ctx.data_file(f"{HISTORY_DIR}/index.csv"))
    if not index.is_file():
        path = files.resolve(ctx.data_file(SP500_PATH), ctx.cache_dir / "files")
        return [("constituents.csv", SP500_SNAPSHOT, path)]
    idx = pd.read_csv(index, dtype=str)
    known = np.maximum(
        pd.to_datetime(idx["author_date"], utc=True),
        pd.to_datetime(idx["committer_date"], utc=True),
    )
    out = [(Path(f).name, t, index.parent / f) for f, t in zip(idx["file"], known, strict=True)]
    return sorted(out, key=lambda s: s[1])  # stable: same-time snapshots keep index order


def _sp_frame(ctx: SourceContext) -> tuple[pd.DataFrame, pd.DataFrame, list[pd.Timestamp]]:
    parts, times = [], []
    for k, (name, known, path) in enumerate(_snapshots(ctx)):
        snap = _read_snapshot(path)
        snap["_snapshot"] = k
        snap["_snapshot_file"] = name
        snap["event_timestamp"] = known
        parts.append(snap)
        times.append(known)
    raw = pd.concat(parts, ignore_index=True)
    date_added = pd.to_datetime(raw["date_added"], errors="coerce", format="%Y-%m-%d")
    frame = pd.DataFrame(
        {
            "symbol": raw["symbol"].map(normalise_symbol),
            "name": to_str(raw["name"]),
            "sector": _sector(raw["sector"]),
            "sub_industry": to_str(raw["sub_industry"]).replace("", None),
            "exchange": None,
            "is_etf": False,
            "date_added": date_added.dt.strftime("%Y-%m-%d").astype(object),
            "event_timestamp": raw["event_timestamp"],
            "test_issue": False,
            "bad_symbol": raw["symbol"].map(normalise_symbol).isna(),
            "_file": "sp500",
            "_snapshot": raw["_snapshot"],
        }
    )
    frame["date_added"] = frame["date_added"].where(date_added.notna(), None)
    raw = raw.drop(columns=["event_timestamp"]).assign(_file="sp500")
    return frame, raw, times


def _change_rows(sp: pd.DataFrame, times: list[pd.Timestamp]) -> pd.DataFrame:
    """S&P change rows: one per symbol per snapshot where its membership or attributes change."""
    by_snapshot = {k: g for k, g in sp.groupby("_snapshot", sort=True)}
    state: dict[str, tuple] = {}
    rows: list[tuple] = []
    for k, t in enumerate(times):
        snap = by_snapshot.get(k)
        listed = set()
        if snap is not None:
            for sym, *attrs in snap[["symbol", *_SP_ATTRS]].itertuples(index=False, name=None):
                listed.add(sym)
                old = state.get(sym, (False, None, None, None, None))[1:]
                new = tuple(a if a is not None else o for a, o in zip(attrs, old, strict=True))
                if state.get(sym) != (True, *new):
                    state[sym] = (True, *new)
                    rows.append((sym, t, True, *new))
        for sym, st in state.items():
            if st[0] and sym not in listed:
                state[sym] = (False, *st[1:])
                rows.append((sym, t, False, *st[1:]))
    out = pd.DataFrame(rows, columns=["symbol", "event_timestamp", "in_sp500", *_SP_ATTRS])
    # two snapshots with one knowledge time: the later one (index order) is the state then
    return out.drop_duplicates(["symbol", "event_timestamp"], keep="last")


def _combine(rows: pd.DataFrame, times: list[pd.Timestamp]) -> pd.DataFrame:
    """Point-in-time change rows from the accepted S&P snapshot rows and NASDAQ rows."""
    sp = _change_rows(rows[rows["_file"] == "sp500"], times)
    nq = rows[rows["_file"] == "nasdaq"]
    nq = pd.DataFrame(
        {
            "symbol": nq["symbol"].to_numpy(),
            "event_timestamp": nq["event_timestamp"].to_numpy(),
            "nq_name": nq["name"].to_numpy(),
            "exchange": nq["exchange"].to_numpy(),
            "is_etf": nq["is_etf"].to_numpy(dtype=bool),
        }
    )
    first = times[0]
    events = pd.concat([sp.assign(_sp=True), nq.assign(_nq=True)], ignore_index=True)
    # nothing is known before the first S&P snapshot: later knowledge is conservative
    events["event_timestamp"] = pd.to_datetime(events["event_timestamp"], utc=True).clip(
        lower=first
    )
    events = events.sort_values(["symbol", "event_timestamp"], kind="stable")
    cols = ["in_sp500", *_SP_ATTRS, "_sp", "nq_name", "exchange", "is_etf", "_nq"]
    events[cols] = events.groupby("symbol", sort=False)[cols].ffill()
    events = events.drop_duplicates(["symbol", "event_timestamp"], keep="last")
    in_sp, in_nq = events["_sp"].eq(True), events["_nq"].eq(True)
    out = pd.DataFrame(
        {
            "symbol": events["symbol"],
            "name": events["name"].where(in_sp, events["nq_name"]),
            "sector": events["sector"],
            "sub_industry": events["sub_industry"],
            "exchange": events["exchange"].where(in_nq, None),
            "is_etf": events["is_etf"].eq(True),
            "date_added": events["date_added"],
            "in_sp500": events["in_sp500"].eq(True),
            "event_timestamp": events["event_timestamp"],
            "source": np.where(
                in_sp & in_nq,
                "listings:sp500+nasdaq",
                np.where(in_sp, "listings:sp500", "listings:nasdaq"),
            ),
        }
    )
    # a NASDAQ event that changes nothing already known adds no row
    state = out[["symbol", *_STATE]].astype(str)
    same = (state == state.groupby(out["symbol"], sort=False).shift(1)).all(axis=1)
    out = out[~same.to_numpy()]
    return out.reset_index(drop=True)


def extract(ctx: SourceContext) -> list[Batch]:
    nq_cols = ("Symbol", "Company Name", "Test Issue", "ETF")
    sp_frame, sp_raw, times = _sp_frame(ctx)
    nq_read = _read(ctx, NASDAQ_PATH, nq_cols)
    nq_raw = nq_read.table.select(list(nq_cols)).to_pandas()
    nq_snapshot = _nasdaq_snapshot(nq_raw["Symbol"])
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
            "bad_symbol": False,
            "_file": "nasdaq",
            "_snapshot": -1,
        }
    )
    raw = pd.concat([sp_raw, nq_raw.assign(_file="nasdaq")], ignore_index=True)
    frame = pd.concat([sp_frame, nq_frame], ignore_index=True)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    rules = [
        equals("bad_symbol", True, "symbol_format"),
        required(["symbol", "name", "event_timestamp"]),
        equals("test_issue", True, "test_issue"),
    ]
    return [
        Batch(
            "listings",
            frame,
            raw,
            rules,
            key=("symbol", "_file", "_snapshot"),
            finalize=lambda accepted: _combine(accepted, times),
            check_time_order=False,
            malformed=nq_read.malformed,
        )
    ]
