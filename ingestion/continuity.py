"""Rule `source_switch_unexplained`: a symbol's series changes vendor or price basis with a jump
that no corporate action explains.

Why: the per-symbol priority (ingestion/priority.py) keeps one source per symbol, so in a normal
run no series switches at all; this rule is the guard that catches a splice if one ever gets
through (a new source, a stored table from an older version, a source mixing bases). At each
switch (consecutive rows of one symbol whose `source` or `price_basis` differ) the stored close
ratio times the split ratios with ex-date in (previous date, this date] must be within
`SWITCH_TOLERANCE` (15%) of 1: a real split explains its jump exactly; a basis splice (AAPL LEAN
468.22 -> all_stocks_5yr 67.85 on 2013-02-08, a x7 basis change) does not. The rows of the
segment that starts at an unexplained switch (until the next switch) are quarantined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion.actions import _ny_days

SWITCH_TOLERANCE = 0.15


def unexplained_switches(
    frame: pd.DataFrame, actions: pd.DataFrame | None, tolerance: float = SWITCH_TOLERANCE
) -> tuple[np.ndarray, list[str]]:
    """(mask over `frame` rows to reject, detail per rejected row in mask order)."""
    mask = np.zeros(len(frame), dtype=bool)
    if frame.empty:
        return mask, []
    combo = frame["source"].astype(str) + "|" + frame["price_basis"].astype(str)
    per_symbol = combo.groupby(frame["symbol"].to_numpy()).nunique()
    candidates = per_symbol.index[per_symbol > 1]
    details: dict[int, str] = {}
    positions = np.arange(len(frame))
    for symbol in candidates:
        rows = positions[(frame["symbol"] == symbol).to_numpy()]
        order = rows[np.argsort(frame["event_timestamp"].to_numpy()[rows], kind="stable")]
        labels = combo.to_numpy()[order]
        close = frame["close"].to_numpy(dtype="float64")[order]
        day = _ny_days(frame["event_timestamp"].iloc[order])
        switches = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        mine = None
        if actions is not None and not actions.empty:
            mine = actions[(actions["symbol"] == symbol) & (actions["split_ratio"] != 1.0)]
        bounds = [*switches.tolist(), len(order)]
        for n, j in enumerate(switches):
            explained = 1.0
            if mine is not None and not mine.empty:
                ex = _ny_days(mine["ex_date"], already_dates=True)
                hit = (ex > day[j - 1]) & (ex <= day[j])
                explained = float(np.prod(mine["split_ratio"].to_numpy()[hit]))
            jump = close[j] / close[j - 1] * explained
            if abs(jump - 1.0) > tolerance:
                seg = order[j : bounds[n + 1]]
                mask[seg] = True
                text = (
                    f"{labels[j - 1]} -> {labels[j]}: close {close[j - 1]:g} -> {close[j]:g}, "
                    f"split ratios in between {explained:g}, unexplained jump {jump - 1:+.1%}"
                )
                for p in seg:
                    details[int(p)] = text
    return mask, [details[int(p)] for p in np.flatnonzero(mask)]
