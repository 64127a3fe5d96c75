"""A pushed DataFrame as columns of serialized values: what `FinfeastProvider.ingest_df` writes.

Why: Feast's `PassthroughProvider.ingest_df` (reached by `store.push`, `write_to_online_store`
and `feast serve`'s `/push`) turns the frame into Arrow, then into one `ValueProto` object per
cell and one `EntityKeyProto` per row, then a `datetime` per row (`_convert_arrow_to_proto`):
about two thirds of a 1,000-row push before the online store is called. This module produces
the same bytes column by column from the frame itself.

Same result as Feast's conversion, by construction:
- columns are found after the batch source's `field_mapping` rename, as Feast does;
- a cell is encoded by the fast encoder (`encoding.DTYPES`, one per dtype) only when the
  (feature type, numpy dtype) pair is one whose Feast rule is the encoder's rule: float64 ->
  Float64, float -> Float32, int -> Int64/Int32 (in range), bool -> Bool, str/None/NaN ->
  String; NaN and None are null as in `python_values_to_proto_values`;
- any other scalar column (nullable pandas dtypes, ints into a Float64 feature, ...) goes
  through Feast's own `python_values_to_proto_values` on the array Feast would have built
  (`pyarrow.Array.from_pandas(...).to_numpy(zero_copy_only=False)`), so Feast's rules apply;
- event times are floored to microseconds, as Feast's `_coerce_datetime` (`to_pydatetime`) does.

Anything else returns None and the provider uses Feast's own path unchanged (and its errors):
on-demand and label views, several or non-string/int join keys, null or mistyped entity
values, missing columns, non-datetime or null timestamps, list/map/vector features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finfeast.feast_plugins import encoding as enc

_US = 1000  # nanoseconds per microsecond


@dataclass(frozen=True)
class ColumnRows:
    """Rows of one feature view as columns: what the plugins' columnar writers take."""

    join_key: str
    entities: list[Any]  # Python str or int per row, in frame order
    event_ns: list[int]  # epoch ns (microsecond precision, Feast's) per row
    created_ns: int | None  # newest created timestamp (epoch ns), None without the column
    features: tuple[str, ...]
    values: list[list[bytes]]  # per feature, serialized ValueProto per row (b"" = null)

    def __len__(self) -> int:
        return len(self.entities)


def _scalar_types() -> dict[Any, str | None]:
    """Feast value types the columnar path converts; the fast encoder name (None: Feast's)."""
    from feast.value_type import ValueType as V

    return {
        V.DOUBLE: "float64",
        V.FLOAT: "float32",
        V.INT64: "int64",
        V.INT32: "int32",
        V.BOOL: "bool",
        V.STRING: "string",
        V.BYTES: None,
        V.UNIX_TIMESTAMP: None,
    }


_INT32 = (-(1 << 31), (1 << 31) - 1)


def _fast_encoder(dtype: str | None, series: pd.Series) -> Callable[[Any], bytes] | None:
    """The fast encoder when its rule is Feast's for this column's numpy dtype, else None."""
    if dtype is None or not isinstance(series.dtype, np.dtype):
        return None
    kind = series.dtype.kind
    if dtype == "float64" and series.dtype == np.float64:
        return enc.DTYPES["float64"].encode
    if dtype == "float32" and kind == "f":
        return enc.DTYPES["float32"].encode
    if dtype == "int64" and kind in "iu" and series.dtype.itemsize <= (8 if kind == "i" else 4):
        return enc.DTYPES["int64"].encode
    if dtype == "int32" and kind in "iu":
        if series.dtype.itemsize < 4 or len(series) == 0:
            return enc.DTYPES["int32"].encode
        lo, hi = int(series.min()), int(series.max())
        if _INT32[0] <= lo and hi <= _INT32[1]:
            return enc.DTYPES["int32"].encode
        return None
    if dtype == "bool" and kind == "b":
        return enc.DTYPES["bool"].encode
    if dtype == "string" and kind == "O":
        return _string_or_none
    return None


class _NotCovered(Exception):
    """A cell the fast encoder has no Feast-identical rule for: convert the column Feast's way."""


def _string_or_none(value: Any) -> bytes:
    if type(value) is str:
        return enc.DTYPES["string"].encode(value)
    if value is None or (type(value) is float and value != value):
        return enc.NULL
    raise _NotCovered


def _feast_column(series: pd.Series, value_type: Any) -> list[bytes]:
    """Feast's own conversion of a column, from the array Feast's path would have built."""
    import pyarrow as pa
    from feast.type_map import python_values_to_proto_values

    values = pa.Array.from_pandas(series).to_numpy(zero_copy_only=False)
    return [v.SerializeToString() for v in python_values_to_proto_values(values, value_type)]


def _encode_column(series: pd.Series, value_type: Any, fast: str | None) -> list[bytes]:
    encode = _fast_encoder(fast, series)
    if encode is not None:
        try:
            return [encode(v) for v in series.tolist()]
        except (_NotCovered, OverflowError):
            pass
    return _feast_column(series, value_type)


def _epoch_us_ns(series: pd.Series) -> list[int] | None:
    """Epoch ns floored to microseconds of a datetime column (naive = UTC), None if not one."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        return None
    ns = series.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if len(ns) and (ns == np.iinfo(np.int64).min).any():  # NaT: Feast's path decides
        return None
    return (ns - ns % _US).tolist()


def _entity_values(series: pd.Series, is_int: bool) -> list[Any] | None:
    if is_int:
        if not (isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu"):
            return None
        if series.dtype.kind == "u" and series.dtype.itemsize == 8:
            return None
        return series.tolist()
    values = series.tolist()
    if not all(type(v) is str for v in values):
        return None
    return values


def column_rows(feature_view: Any, df: pd.DataFrame) -> ColumnRows | None:
    """The frame's rows for `feature_view` as columns, or None when Feast's path must run."""
    from feast.feature_view import FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Int64, String

    if not isinstance(feature_view, FeatureView) or isinstance(feature_view, OnDemandFeatureView):
        return None
    source = feature_view.batch_source
    if source is None or df.columns.has_duplicates:
        return None
    mapping = source.field_mapping or {}
    # Feast renames the frame's columns forward (`_run_pyarrow_field_mapping`): name -> column
    named: dict[str, Any] = {}
    for col in df.columns:
        target = mapping.get(col, col)
        if target in named:
            return None
        named[target] = col
    entity_cols = [c for c in feature_view.entity_columns]
    if len(entity_cols) != 1 or entity_cols[0].dtype not in (String, Int64):
        return None
    join_key = entity_cols[0].name
    needed = [join_key, source.timestamp_field, *(f.name for f in feature_view.features)]
    if source.created_timestamp_column:
        needed.append(source.created_timestamp_column)
    if any(n not in named for n in needed) or set(df.index.names) & set(needed):
        return None
    types = _scalar_types()
    plan = []
    for field in feature_view.features:
        value_type = field.dtype.to_value_type()
        if value_type not in types or field.vector_index:
            return None
        plan.append((field.name, value_type, types[value_type]))
    entities = _entity_values(df[named[join_key]], entity_cols[0].dtype == Int64)
    event_ns = _epoch_us_ns(df[named[source.timestamp_field]])
    if entities is None or event_ns is None:
        return None
    created_ns = None
    if source.created_timestamp_column:
        created = _epoch_us_ns(df[named[source.created_timestamp_column]])
        if created is None:
            return None
        created_ns = max(created) if created else None
    values = [_encode_column(df[named[name]], vt, fast) for name, vt, fast in plan]
    return ColumnRows(
        join_key, entities, event_ns, created_ns, tuple(n for n, _, _ in plan), values
    )
