"""Quarantine records: every rejected row, with its source, table, rule and the original row.

Why: nothing read is silently dropped. A rejected row is kept as JSON of the row as read, keyed
by (source, rule, row_hash) so re-running an ingest does not duplicate quarantine entries; the
hash includes the occurrence number among identical rows, so two identical bad rows stay two.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ingestion.tables import QUARANTINE


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _column_values(values: pd.Series) -> list[Any]:
    """JSON-ready Python values of one column, the same as `_jsonable` per cell but column-wise:
    float, int and bool columns convert in one `tolist` (NaN -> None), strings pass through, and
    only other values (timestamps, odd objects) go through `_jsonable` one by one."""
    if not isinstance(values.dtype, np.dtype):  # extension dtypes: pandas' own boxing (NA -> None)
        return [_jsonable(v) for v in values.to_frame().to_dict("list")[values.name]]
    kind = values.dtype.kind
    if kind in "iub":
        return values.to_numpy().tolist()
    if kind == "f":
        arr = values.to_numpy()
        out = arr.tolist()
        for i in np.flatnonzero(np.isnan(arr)).tolist():
            out[i] = None
        return out
    return [v if type(v) is str else _jsonable(v) for v in values.to_numpy(dtype=object)]


def quarantine_rows(
    source: str, table: str, rejected: pd.DataFrame, ingested_at: pd.Timestamp
) -> pd.DataFrame:
    """Quarantine table rows for `rejected` (raw columns + `_rule`, `_detail`)."""
    if rejected.empty:
        return QUARANTINE.empty()
    raw_cols = [c for c in rejected.columns if c not in ("_rule", "_detail")]
    columns = [_column_values(rejected[c]) for c in raw_cols]
    dumps = orjson.dumps
    rows = [
        dumps(dict(zip(raw_cols, vals, strict=True))).decode()
        for vals in zip(*columns, strict=True)
    ]
    if not raw_cols:  # malformed lines only: an empty object per row, as before
        rows = ["{}"] * len(rejected)
    rules = rejected["_rule"].astype(str).tolist()
    seen: dict[tuple[str, str], int] = {}
    hashes = []
    for rule, row in zip(rules, rows, strict=True):
        n = seen.get((rule, row), 0)
        seen[(rule, row)] = n + 1
        hashes.append(hashlib.sha256(f"{table}|{row}|{n}".encode()).hexdigest()[:24])
    out = pd.DataFrame(
        {
            "source": source,
            "table": table,
            "rule": rules,
            "detail": rejected["_detail"].astype(str).tolist(),
            "row": rows,
            "row_hash": hashes,
            "ingested_at": ingested_at,
        }
    )
    return QUARANTINE.conform(out)
