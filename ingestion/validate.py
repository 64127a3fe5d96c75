"""Validation: split a batch into accepted rows and rejected rows, each with the rule it failed.

Order: the batch's row rules (first failing rule wins), then duplicate keys (the first copy
stays), then time order per entity (a row whose time is not after the previous accepted row of
the same entity, in file order, is rejected). Finally the accepted rows are checked against the
table's explicit pandera schema: a failure there is a bug in the source's mapping, not bad input,
so it raises.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion.batch import Batch, Checked
from ingestion.rules import DUPLICATE_KEY, MALFORMED_ROW, TIME_NOT_INCREASING
from ingestion.tables import TABLES, pandera_schema


def _first_failures(batch: Batch) -> pd.Series:
    """The first rule each row fails (None where it passes)."""
    frame = batch.frame
    rule = np.full(len(frame), None, dtype=object)
    open_ = np.ones(len(frame), dtype=bool)
    for name, check in batch.rules:
        if not open_.any():
            break
        with np.errstate(invalid="ignore"):
            fails = _as_failures(check(frame)) & open_
        rule[fails] = name
        open_ &= ~fails
    spec = TABLES[batch.table]
    key = list(batch.key or spec.key)
    time_col = spec.time_column
    entity = list(batch.entity if batch.entity is not None else spec.entity)
    check_order = bool(batch.check_time_order and time_col and time_col in frame)
    in_order = False
    if check_order and open_.any() and not batch.allow_equal_times:
        sub = frame.loc[open_, [*entity, time_col]]
        in_order = _in_order_by_blocks(sub, entity, time_col, equal_ok=False)
        if in_order and set(key) == {*entity, time_col}:
            # one block per entity with strictly increasing times: every (entity, time) key is
            # distinct, so neither the duplicate-key nor the time-order rule can reject a row
            return pd.Series(rule, index=frame.index)
    if open_.any():
        idx = np.flatnonzero(open_)[duplicated_rows(frame.loc[open_, key])]
        if len(idx):
            rule[idx] = DUPLICATE_KEY
            open_[idx] = False
            in_order = False  # decided on rows that included the duplicates: decide again
    if check_order and open_.any():
        sub = frame.loc[open_, [*entity, time_col]]
        if not (in_order or _in_order_by_blocks(sub, entity, time_col, batch.allow_equal_times)):
            ts = sub[time_col]
            if entity:
                running_max = ts.groupby([sub[c] for c in entity], sort=False).cummax()
                prev = running_max.groupby([sub[c] for c in entity], sort=False).shift(1)
            else:
                prev = ts.cummax().shift(1)
            regress = (ts < prev) if batch.allow_equal_times else (ts <= prev)
            bad = regress.to_numpy(dtype=bool, na_value=False)
            idx = np.flatnonzero(open_)[bad]
            rule[idx] = TIME_NOT_INCREASING
            open_[idx] = False
    return pd.Series(rule, index=frame.index)


def _as_failures(result: object) -> np.ndarray:
    """A rule's result as a numpy bool mask; a missing answer (NA) counts as failing. Plain bool
    results (the common case) are used as they are, without a nullable-boolean round trip."""
    values = np.asarray(result)
    if values.dtype == bool:
        return values
    return pd.Series(values, dtype="boolean").to_numpy(dtype=bool, na_value=True)


def _in_order_by_blocks(
    sub: pd.DataFrame, entity: list[str], time_col: str, equal_ok: bool
) -> bool:
    """Fast path for the common layout (one contiguous block per entity, time increasing in
    each): True means no row can break the time-order rule, so the groupby check is skipped."""
    ts = sub[time_col].to_numpy(dtype="datetime64[ns]").view("int64")
    if len(ts) < 2:
        return True
    if entity:
        codes = pd.util.hash_pandas_object(sub[entity], index=False).to_numpy()
        change = codes[1:] != codes[:-1]
        starts = codes[np.r_[0, np.flatnonzero(change) + 1]]
        if len(np.unique(starts)) != len(starts):  # only block starts: ~500, not 600k values
            return False  # an entity appears in more than one block
    else:
        change = np.zeros(len(ts) - 1, dtype=bool)
    step = ts[1:] >= ts[:-1] if equal_ok else ts[1:] > ts[:-1]
    return bool((step | change).all())


def duplicated_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows repeating an earlier row (first copy stays), exact.

    Rows are hashed to 64-bit integers first (fast); only rows whose hash repeats are compared
    on their real values, so a hash collision can never reject a row by mistake.
    """
    hashes = pd.util.hash_pandas_object(df, index=False).to_numpy()
    candidates = pd.Series(hashes).duplicated(keep=False).to_numpy()
    out = np.zeros(len(df), dtype=bool)
    if candidates.any():
        out[candidates] = df.iloc[np.flatnonzero(candidates)].duplicated(keep="first").to_numpy()
    return out


def check_batch(source: str, batch: Batch, ingested_at: pd.Timestamp) -> Checked:
    """Validate one batch; accepted rows come back conformed to the table (source, ingested_at set)."""
    spec = TABLES[batch.table]
    if "source" not in batch.frame:
        batch.frame = batch.frame.assign(source=source)
    failures = _first_failures(batch)
    bad = failures.notna().to_numpy()
    rejected = batch.raw.loc[bad].copy()
    rejected["_rule"] = failures[bad].to_numpy()
    rejected["_detail"] = ""
    if batch.malformed:
        lines = pd.DataFrame(
            {"line": batch.malformed, "_rule": MALFORMED_ROW, "_detail": "unparseable line"}
        )
        rejected = pd.concat([rejected, lines], ignore_index=True)
    accepted = batch.frame.loc[~bad] if bad.any() else batch.frame
    if batch.finalize is not None:
        accepted = batch.finalize(accepted)
    # conform builds a new frame, so the batch's frame is never modified and not copied twice
    extra: dict[str, object] = {"ingested_at": ingested_at}
    if "source" not in accepted:  # a finalize step may drop it
        extra["source"] = source
    accepted = spec.conform(accepted, extra)
    pandera_schema(batch.table).validate(accepted)
    rows_read = len(batch.raw) + len(batch.malformed)
    return Checked(source, batch.table, rows_read, accepted, rejected, batch.raw)
