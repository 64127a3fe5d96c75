"""Cross-source priority: one row per key of a table, taken from the highest-priority source.

Why: `stocks_5yr` and `lean_daily` both hold e.g. AAPL 2013-2018, and `bars` keys on
(symbol, event_timestamp). The source listed first in `ingestion.SOURCES` wins; the other copy is
a legitimate outcome, not an error, but it is not loaded, so it is quarantined under the rule
`superseded` with the winning source in `detail`, and rows read = loaded + quarantined holds.
Rows already stored by a source that is not part of this run take part with their own rank, so
a run of only `lean_daily` cannot overwrite `stocks_5yr` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion.batch import Checked
from ingestion.rules import SUPERSEDED
from ingestion.sources import rank
from ingestion.validate import duplicated_rows


def _shares_key(claims: pd.DataFrame, losers: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Rows of `claims` whose key is one of the losers' keys (hash pre-filter, then exact)."""
    h_claims = pd.util.hash_pandas_object(claims[key], index=False).to_numpy()
    h_losers = pd.util.hash_pandas_object(losers[key], index=False).to_numpy()
    return np.isin(h_claims, h_losers)


def _only_shared_leading_values(parts: list[pd.DataFrame], column: str) -> list[pd.DataFrame]:
    """Keep only rows whose first key column value (e.g. the symbol) occurs in two or more claim
    sets: only those can collide, and it makes the contest small."""
    seen: dict[object, int] = {}
    for part in parts:
        for value in part[column].unique():
            seen[value] = seen.get(value, 0) + 1
    shared = [v for v, n in seen.items() if n > 1]
    return [part[part[column].isin(shared)] for part in parts]


def apply_priority(checked: list[Checked], key: list[str], stored: pd.DataFrame | None) -> None:
    """Move rows that lose the priority contest from `accepted` to `rejected` (in place)."""
    parts = []
    for i, c in enumerate(checked):
        if c.accepted.empty:
            continue
        part = c.accepted[key].copy()
        part["_rank"] = rank(c.source)
        part["_owner"] = i
        part["_label"] = c.accepted.index
        part["_source"] = c.source
        parts.append(part)
    if stored is not None and not stored.empty:
        part = stored[key].copy()
        part["_rank"] = stored["source"].map(rank).to_numpy()
        part["_owner"] = -1
        part["_label"] = -1
        part["_source"] = stored["source"]
        parts.append(part)
    if len(parts) < 2:
        return
    parts = _only_shared_leading_values(parts, key[0])
    claims = pd.concat(parts, ignore_index=True).sort_values("_rank", kind="stable")
    claims = claims.reset_index(drop=True)
    losers = claims[duplicated_rows(claims[key]) & (claims["_owner"] >= 0).to_numpy()]
    if losers.empty:
        return
    contested = claims[claims.index.isin(losers.index) | _shares_key(claims, losers, key)]
    winners = contested.drop_duplicates(key, keep="first")[[*key, "_source"]]
    losers = losers.merge(winners.rename(columns={"_source": "_winner"}), on=key, how="left")
    for owner, group in losers.groupby("_owner"):
        c = checked[int(owner)]
        labels = pd.Index(group["_label"])
        moved = c.raw.loc[labels].copy()
        moved["_rule"] = SUPERSEDED
        moved["_detail"] = ("superseded by " + group["_winner"].astype(str)).to_numpy()
        c.rejected = pd.concat([c.rejected, moved], ignore_index=True)
        c.accepted = c.accepted[~c.accepted.index.isin(labels)]
