"""Cross-source priority: one source per series (per symbol), chosen by rank, never per row.

Why per series: a row-by-row winner splices two vendors (and two price bases) into one series:
all_stocks_5yr's split-adjusted AAPL 2013-2018 inside LEAN's as-traded AAPL made ret_1 on
2013-02-08 -85.5%. So for each entity of a table (`bars`: the symbol) the source ranked first in
`ingestion.SOURCES` that delivers any row of it owns the whole series; every row of a
lower-ranked source for that entity is quarantined as `superseded`, with both values in `detail`
(JSON: winner, both bases, both closes, the loser's close converted to the winner's basis with
the corporate actions, the relative difference).

Where both deliver the same bar, the two closes are compared on one basis (all_stocks_5yr's
`split_adjusted_as_of:2018-02-07` close x the split ratios with ex-date after the bar and on or
before 2018-02-07 = the as-traded close). A difference beyond `CLOSE_TOLERANCE` (1%) is a
vendor disagreement, written to the `vendor_disagreements` table and counted in the report.
Why 1%: on ordinary days the two vendors' closes are equal (data README §1) and the conversion
error is far below 0.01% (all_stocks_5yr prints 4 decimals), while the real bad prints are
5-6% (AAPL 2017-08-01 158.59 vs 150.05; AIG 2014-05-19 55.69 vs 52.71); 1% flags such prints
without flagging rounding.

Rows already stored by a source that is not part of this run take part with their own rank, so
`--sources stocks_5yr` cannot take AAPL back from stored LEAN rows; stored rows of a lower-ranked
source whose entity a running source now owns are returned as `purge` (the runner deletes them,
so the stored series stays one source).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from ingestion.actions import split_multiplier
from ingestion.batch import Checked
from ingestion.rules import SUPERSEDED
from ingestion.sources import rank

CLOSE_TOLERANCE = 0.01
COMPARED = {"bars": "close", "corporate_actions": "cash_dividend"}


@dataclass
class PriorityResult:
    disagreements: pd.DataFrame | None = None
    purge: pd.DataFrame = field(default_factory=pd.DataFrame)  # entity columns + `source`
    superseded: int = 0


def _entities(frame: pd.DataFrame, entity: list[str]) -> pd.DataFrame:
    return frame[entity].drop_duplicates()


def apply_priority(
    checked: list[Checked],
    table: str,
    key: list[str],
    entity: list[str],
    stored: pd.DataFrame | None,
    actions: pd.DataFrame | None = None,
    tolerance: float = CLOSE_TOLERANCE,
) -> PriorityResult:
    """Move rows of sources that do not own their entity from `accepted` to `rejected`."""
    result = PriorityResult()
    if not entity:
        entity = list(key)
    claims = []
    for c in checked:
        if not c.accepted.empty:
            claims.append(_entities(c.accepted, entity).assign(_rank=rank(c.source), _src=c.source))
    if stored is not None and not stored.empty:
        s = stored[[*entity, "source"]].drop_duplicates()
        claims.append(
            s[entity].assign(_rank=s["source"].map(rank).to_numpy(), _src=s["source"].to_numpy())
        )
    if len(claims) < 2:
        return result
    all_claims = pd.concat(claims, ignore_index=True).sort_values("_rank", kind="stable")
    owners = all_claims.drop_duplicates(entity, keep="first").rename(
        columns={"_rank": "_owner_rank", "_src": "_owner"}
    )
    if stored is not None and not stored.empty:
        s = stored[[*entity, "source"]].drop_duplicates()
        s = s.assign(_rank=s["source"].map(rank).to_numpy()).merge(owners, on=entity)
        result.purge = s.loc[s["_rank"] > s["_owner_rank"], [*entity, "source"]]
    column = COMPARED.get(table)
    winners = _winner_rows(checked, stored, key, column)
    reports = []
    for c in checked:
        if c.accepted.empty:
            continue
        mine = c.accepted[entity].merge(owners, on=entity, how="left")
        lose = (mine["_owner_rank"] < rank(c.source)).to_numpy()
        if not lose.any():
            continue
        labels = c.accepted.index[lose]
        losers = c.accepted.loc[lose]
        detail, report = _compare(
            losers, mine.loc[lose, "_owner"].to_numpy(), winners, key, column, actions, tolerance
        )
        moved = c.raw.loc[labels].copy()
        moved["_rule"] = SUPERSEDED
        moved["_detail"] = detail
        c.rejected = pd.concat([c.rejected, moved], ignore_index=True)
        c.accepted = c.accepted.loc[~lose]
        result.superseded += len(labels)
        if report is not None and not report.empty:
            reports.append(report)
    if reports:
        result.disagreements = pd.concat(reports, ignore_index=True)
    return result


def _winner_rows(
    checked: list[Checked], stored: pd.DataFrame | None, key: list[str], column: str | None
) -> pd.DataFrame:
    """Key, source, compared value and basis of every candidate winning row (this run + stored)."""
    cols = [*key, "source"] + ([column] if column else [])
    extra = ["price_basis"]
    parts = []
    for c in checked:
        if not c.accepted.empty:
            parts.append(c.accepted[[*cols, *[e for e in extra if e in c.accepted]]])
    if stored is not None and not stored.empty and (column is None or column in stored):
        parts.append(stored[[*cols, *[e for e in extra if e in stored]]])
    if not parts:
        return pd.DataFrame(columns=[*cols, *extra])
    out = pd.concat(parts, ignore_index=True)
    if "price_basis" not in out:
        out["price_basis"] = None
    return out


def _compare(
    losers: pd.DataFrame,
    owner: np.ndarray,
    winners: pd.DataFrame,
    key: list[str],
    column: str | None,
    actions: pd.DataFrame | None,
    tolerance: float,
) -> tuple[list[str], pd.DataFrame | None]:
    """The `detail` JSON of each superseded row and, for bars, the disagreement rows."""
    frame = losers[key].copy()
    frame["_owner"] = owner
    w = winners.rename(
        columns={
            "source": "_owner",
            "price_basis": "_w_basis",
            **({column: "_w_value"} if column else {}),
        }
    )
    frame = frame.merge(w, on=[*key, "_owner"], how="left")
    has_basis = "price_basis" in losers
    loser_basis = losers["price_basis"].to_numpy() if has_basis else np.full(len(losers), None)
    loser_value = losers[column].to_numpy(dtype="float64") if column else None
    converted = rel = None
    if column == "close" and has_basis:
        symbols = losers["symbol"].reset_index(drop=True)
        times = losers["event_timestamp"].reset_index(drop=True)
        to_traded = split_multiplier(symbols, times, pd.Series(loser_basis), actions)
        w_basis = frame["_w_basis"].fillna("as_traded").reset_index(drop=True)
        w_traded = split_multiplier(symbols, times, w_basis, actions)
        converted = loser_value * to_traded / w_traded
        if actions is None or actions.empty:
            # no corporate actions loaded (e.g. `--sources stocks_5yr,lean_daily`): a
            # split-adjusted close cannot be put on the as-traded basis, so it is not compared
            # (rather than reported as a false disagreement)
            basis_l = pd.Series(loser_basis).astype(str).str.startswith("split_adjusted")
            basis_w = w_basis.astype(str).str.startswith("split_adjusted")
            converted = np.where((basis_l | basis_w).to_numpy(), np.nan, converted)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(converted / frame["_w_value"].to_numpy(dtype="float64") - 1.0)
    source = losers["source"].to_numpy() if "source" in losers else np.full(len(losers), None)
    details = []
    w_values = frame["_w_value"].to_numpy(dtype="float64") if column else None
    w_bases = frame["_w_basis"].to_numpy() if "_w_basis" in frame else np.full(len(frame), None)
    for i in range(len(frame)):
        item: dict[str, object] = {"superseded_by": owner[i], "reason": "one source per symbol"}
        if column:
            wv = w_values[i]
            item[f"winner_{column}"] = None if np.isnan(wv) else float(wv)
            item[f"loser_{column}"] = None if np.isnan(loser_value[i]) else float(loser_value[i])
        if has_basis:
            item["winner_basis"] = w_bases[i]
            item["loser_basis"] = loser_basis[i]
        if converted is not None:
            item[f"loser_{column}_as_winner_basis"] = round(float(converted[i]), 6)
            item["rel_diff"] = None if np.isnan(rel[i]) else round(float(rel[i]), 6)
        details.append(orjson.dumps(item).decode())
    if converted is None:
        return details, None
    bad = np.nan_to_num(rel, nan=0.0) > tolerance
    report = pd.DataFrame(
        {
            "symbol": losers["symbol"].to_numpy()[bad],
            "event_timestamp": losers["event_timestamp"].to_numpy()[bad],
            "field": column,
            "winner_source": owner[bad],
            "winner_basis": w_bases[bad],
            "winner_value": w_values[bad],
            "loser_source": source[bad],
            "loser_basis": loser_basis[bad],
            "loser_value": loser_value[bad],
            "loser_value_as_winner_basis": converted[bad],
            "rel_diff": rel[bad],
            "tolerance": tolerance,
        }
    )
    return details, report
