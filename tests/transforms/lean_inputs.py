"""LEAN raw daily bars and factor/map files read straight from ../shared/data (README §1, §7),
for the corporate-action tests: the bars as traded, the `corporate_actions` frame built from the
factor files, and, separately, LEAN's documented per-day factors (the oracle).

Why here and not from the ingestion tables: the tests must not trust the code under test. Two
readings of the factor files are used and they are deliberately different code:
- `lean_actions`: events (consecutive factor rows; ex-date = the next XNYS session after the
  earlier row's date) in the contract's `corporate_actions` columns, fed to the engine;
- `lean_adjusted_closes`: LEAN's rule "the factors of a trading day d are those of the first row
  whose date is on or after d; adjusted = raw x price_factor x split_factor", per bar.

Symbols are those of the bar file. A ticker maps to the security that traded under it that day
(map files): the file's GOOG rows before 2014-04-03 are the original Google, today's GOOGL, so they
take googl's factors (its 2:1 split on 2014-04-03); a symbol no map file names that day (BAC while
it traded as NB) is its own folder's security.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from finfeast import sessions


@lru_cache(maxsize=1)
def _raw(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def lean_bars(data_dir: Path, symbols: tuple[str, ...] | None = None) -> pd.DataFrame:
    """LEAN raw daily bars stamped at their session's actual XNYS close (UTC)."""
    raw = _raw(str(data_dir / "daily" / "lean_equity_daily_bars.csv.gz"))
    if symbols is not None:
        raw = raw[raw["symbol"].isin(symbols)]
    bars = pd.DataFrame(
        {
            "symbol": raw["symbol"].to_numpy(),
            "date": pd.to_datetime(raw["date"]).to_numpy(),
            "event_timestamp": sessions.session_closes(raw["date"].to_numpy()).to_numpy(),
            **{c: raw[c].astype("float64").to_numpy() for c in ("open", "high", "low", "close")},
            "volume": raw["volume"].astype("float64").to_numpy(),
        }
    )
    assert bars["event_timestamp"].notna().all(), "every LEAN bar date is an XNYS session"
    return bars.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


@lru_cache(maxsize=64)
def _table(folder: Path, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.read_csv(folder / f"{name}.csv", header=None, names=list(columns))
    frame["date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
    return frame


def factor_file(data_dir: Path, security: str) -> pd.DataFrame:
    folder = data_dir / "corporate_actions" / "lean_factor_files"
    return _table(folder, security, ("date", "price_factor", "split_factor", "reference_price"))


def map_file(data_dir: Path, security: str) -> pd.DataFrame:
    folder = data_dir / "corporate_actions" / "lean_map_files"
    return _table(folder, security, ("date", "ticker", "exchange"))


def _first_on_or_after(rows: pd.DataFrame, dates: np.ndarray) -> np.ndarray:
    """Index of the first row whose date is on or after each date (len(rows) = past the end)."""
    return np.searchsorted(rows["date"].to_numpy(), dates, side="left")


@lru_cache(maxsize=4)
def securities(data_dir: Path) -> tuple[str, ...]:
    return tuple(
        sorted(p.stem for p in (data_dir / "corporate_actions" / "lean_factor_files").iterdir())
    )


def security_of(data_dir: Path, symbol: str, dates: np.ndarray) -> np.ndarray:
    """Per date, the security (factor file name) that traded under ticker `symbol` that day."""
    out = np.full(len(dates), symbol.lower(), dtype=object)
    claimed = np.zeros(len(dates), dtype=bool)
    for sec in securities(data_dir):
        mp = map_file(data_dir, sec)
        k = _first_on_or_after(mp, dates)
        listed = (k < len(mp)) & (dates >= mp["date"].iloc[0])
        ticker = np.where(listed, mp["ticker"].to_numpy()[np.minimum(k, len(mp) - 1)], "")
        mine = ticker == symbol.lower()
        out[mine & ~claimed] = sec
        claimed |= mine
    return out


def lean_adjusted_closes(data_dir: Path, bars: pd.DataFrame) -> pd.DataFrame:
    """The oracle: per bar, LEAN's cumulative factors of the security trading under the ticker
    that day and the adjusted close, plus `ret_total`/`ret_split`: the close-to-close returns of
    the (price x split)-adjusted and split-adjusted series, computed within one security's
    factors across each pair of bars (the earlier bar's security), so a ticker that changes
    security is compared on one factor history."""
    parts = []
    for symbol, grp in bars.groupby("symbol", sort=True):
        dates = grp["date"].to_numpy()
        sec = security_of(data_dir, symbol, dates)
        close = grp["close"].to_numpy()
        ret_total = np.full(len(grp), np.nan)
        ret_split = np.full(len(grp), np.nan)
        price_f = np.ones(len(grp))
        split_f = np.ones(len(grp))
        for s in np.unique(sec):
            ff = factor_file(data_dir, s)
            pf, sf = ff["price_factor"].to_numpy(), ff["split_factor"].to_numpy()
            k = np.minimum(_first_on_or_after(ff, dates), len(ff) - 1)
            own = sec == s
            price_f[own], split_f[own] = pf[k][own], sf[k][own]
            # returns whose earlier bar belongs to security s: both bars on s's factors
            prev = np.flatnonzero(own[:-1])
            cur = prev + 1
            ret_total[cur] = (close[cur] * pf[k[cur]] * sf[k[cur]]) / (
                close[prev] * pf[k[prev]] * sf[k[prev]]
            ) - 1.0
            ret_split[cur] = (close[cur] * sf[k[cur]]) / (close[prev] * sf[k[prev]]) - 1.0
        parts.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "event_timestamp": grp["event_timestamp"].to_numpy(),
                    "security": sec,
                    "price_factor": price_f,
                    "split_factor": split_f,
                    "ret_total": ret_total,
                    "ret_split": ret_split,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def lean_actions(data_dir: Path, bars: pd.DataFrame) -> pd.DataFrame:
    """The `corporate_actions` frame (contract columns) of the bar file's symbols: one event per
    change between consecutive factor rows, ex-date = the next XNYS session after the earlier
    row's date, known at that session's open; assigned to the ticker the security traded under
    on the earlier row's date."""
    days = sessions.schedule().index.to_numpy()
    rows = []
    for sec in securities(data_dir):
        ff = factor_file(data_dir, sec)
        pf, sf = ff["price_factor"].to_numpy(), ff["split_factor"].to_numpy()
        split, dividend = sf[:-1] / sf[1:], pf[:-1] / pf[1:]
        event = (split != 1.0) | (dividend != 1.0)
        last_old = ff["date"].to_numpy()[:-1][event]
        ex_date = days[np.searchsorted(days, last_old, side="right")]
        for symbol in sorted(set(bars["symbol"])):
            mine = security_of(data_dir, symbol, last_old) == sec
            for k in np.flatnonzero(mine):
                rows.append((symbol, ex_date[k], split[event][k], dividend[event][k]))
    frame = pd.DataFrame(rows, columns=["symbol", "ex_date", "split_price_factor", "dpf"])
    frame["ex_date"] = pd.to_datetime(frame["ex_date"]).dt.tz_localize("UTC")
    frame["event_timestamp"] = sessions.session_opens(frame["ex_date"].dt.tz_localize(None))
    frame["split_ratio"] = 1.0 / frame["split_price_factor"]
    frame["dividend_price_factor"] = frame.pop("dpf")
    frame["cash_dividend"] = np.nan  # not needed by the engine (its factor is given)
    return frame.sort_values(["symbol", "ex_date"]).reset_index(drop=True)
