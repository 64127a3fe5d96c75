"""finfeast's Feast offline store: Feast's DuckDB store with an as-of join and a shared latest scan.

Selected in `feature_repo/feature_store.yaml` by
`offline_store: {type: finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore}`, so the stock
calls (`FeatureStore.get_historical_features`, `feast materialize[-incremental]`) use it.

Why a subclass and not Feast's store as is (docs/offline_store.md has the measurements):
- `get_historical_features`: Feast builds the point-in-time join from an inner join of every
  entity row with every feature row of its key, then a window dedupe (ibis); on 1M entity rows x
  50 features that is ~3.7x a pandas `merge_asof`. Here each group of views that share a source,
  timestamp columns, TTL and join keys is one DuckDB `ASOF LEFT JOIN` (a sort-merge), with Feast's
  rules: the latest row with `event_ts <= t`, null when `event_ts < t - ttl` (ttl 0 = no limit),
  the latest `created_timestamp` among rows of equal event time, `full_feature_names`, join-key
  maps, field mappings, and on-demand views applied by the RetrievalJob exactly as Feast does.
  Requests this join does not cover (`filter_by_created_timestamp` with a created column,
  substrait on-demand views, an SQL entity_df, non-Parquet sources) go to Feast's own join.
- `pull_latest_from_table_or_query` (materialization): the 12 daily views share the wide
  `features_daily` table; Feast reads it once per view. Here the latest rows of *all* columns are
  read once per (source files, keys, time range) and kept in a small in-process cache, so the
  other views of the same source are served from memory (invalidated when the files change).
- Sources: a FileSource path may be a Parquet file, a directory of Parquet parts (the stream
  logs, `<offline_dir>/<log_table>/part-*.parquet`) or a glob; a path that does not exist yet is an
  empty table (materialize loads nothing, a historical join returns nulls), never an error.
  Relative paths resolve against the repo directory (`config.repo_path`), like Feast's registry
  and SQLite paths, so plain `feast` works from any working directory.
"""

from __future__ import annotations

import glob
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.data_format import DeltaFormat
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    IbisRetrievalJob,
    get_historical_features_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.type_map import feast_value_type_to_pa
from pydantic import StrictStr

PLUGIN_TYPE = "finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore"
ROW_ID = "__finfeast_row"
_LATEST_CACHE_SIZE = 8


class FinfeastDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Same options as Feast's DuckDB store (`staging_location`, ...)."""

    type: StrictStr = PLUGIN_TYPE


# ---- sources ------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_uri(source: FileSource, repo_path: object) -> str:
    """The source's path, relative paths resolved against the repo directory."""
    return FileSource.get_uri_for_file_path(repo_path, source.path)


def _is_remote(uri: str) -> bool:
    return "://" in uri


def _has_glob(uri: str) -> bool:
    return any(ch in uri for ch in "*?[")


def scan_target(uri: str) -> str | None:
    """What DuckDB should read for `uri`: the file, `<dir>/**/*.parquet`, the glob; None = nothing yet."""
    if _is_remote(uri):
        return uri
    if _has_glob(uri):
        return uri if glob.glob(uri, recursive=True) else None
    if os.path.isdir(uri):
        pattern = os.path.join(uri, "**", "*.parquet")
        return pattern if glob.glob(pattern, recursive=True) else None
    if os.path.exists(uri):
        return uri
    # A log directory not created yet, next to a single-file log of a workdir written before
    # logs became part directories: read that file until the stream jobs write parts.
    legacy = uri.rstrip("/") + ".parquet"
    return legacy if not uri.endswith(".parquet") and os.path.isfile(legacy) else None


def _files_signature(target: str) -> tuple:
    """Names, sizes and mtimes of the files behind `target` (cache invalidation)."""
    if _is_remote(target):
        return (target,)
    files = sorted(glob.glob(target, recursive=True)) if _has_glob(target) else [target]
    out = []
    for f in files:
        st = os.stat(f)
        out.append((f, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _read_sql(target: str) -> str:
    many = _has_glob(target)
    return f"read_parquet({_lit(target)}{', union_by_name = true' if many else ''})"


def _is_parquet_file_source(source: object) -> bool:
    if not isinstance(source, FileSource):
        return False
    return not isinstance(source.file_format, DeltaFormat)


def _connect() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def _empty_ibis(columns: Iterable[str]) -> ibis.expr.types.Table:
    return ibis.memtable(pa.table({c: pa.array([], pa.null()) for c in columns}))


def _reader_with_missing(
    schemas: dict[str, pa.Schema] | None = None,
) -> Callable[[DataSource, str], Any]:
    """Feast's DuckDB reader, resolving relative paths, reading directories, empty when missing."""

    def read(data_source: DataSource, repo_path: str):
        if not _is_parquet_file_source(data_source):
            return feast_duckdb._read_data_source(data_source, repo_path)
        target = scan_target(source_uri(data_source, repo_path))
        if target is None:
            schema = (schemas or {}).get(data_source.name)
            if schema is None:
                return _empty_ibis([])
            return ibis.memtable(schema.empty_table())
        if _has_glob(target):
            return ibis.read_parquet(target, union_by_name=True)
        return ibis.read_parquet(target)

    return read


def _view_schema(fv: FeatureView) -> pa.Schema:
    """Arrow schema of a view's source columns (for an empty source), from the view definition."""
    src = fv.batch_source
    inverse = {new: old for old, new in (src.field_mapping or {}).items()}
    fields = []
    for f in [*fv.entity_columns, *fv.features]:
        fields.append(pa.field(inverse.get(f.name, f.name), _pa_type(f)))
    ts = pa.timestamp("us", tz="UTC")
    fields.append(pa.field(inverse.get(src.timestamp_field, src.timestamp_field), ts))
    if src.created_timestamp_column:
        c = src.created_timestamp_column
        fields.append(pa.field(inverse.get(c, c), ts))
    return pa.schema(fields)


def _pa_type(field: Any) -> pa.DataType:
    try:
        return feast_value_type_to_pa(field.dtype.to_value_type())
    except Exception:  # exotic dtypes: a null column is still a correct "no data"
        return pa.null()


# ---- latest rows (materialization) ---------------------------------------------------------

_latest_lock = threading.Lock()
_latest_cache: OrderedDict[tuple, pa.Table] = OrderedDict()


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def latest_rows(
    target: str,
    join_keys: list[str],
    timestamp_field: str,
    created_timestamp_column: str | None,
    start: datetime,
    end: datetime,
) -> pa.Table:
    """Latest row per key of ALL source columns with `start <= event_ts <= end` (cached)."""
    key = (
        target,
        _files_signature(target),
        tuple(join_keys),
        timestamp_field,
        created_timestamp_column,
        _utc(start),
        _utc(end),
    )
    with _latest_lock:
        if key in _latest_cache:
            _latest_cache.move_to_end(key)
            return _latest_cache[key]
        # Two phases, because a window over all columns of a wide table costs ~3x the scan:
        # the winners (key, event time, created) from the narrow columns, then one scan of every
        # column semi-joined with them (a tie on all three keeps one row).
        ts = _q(timestamp_field)
        created = _q(created_timestamp_column) if created_timestamp_column else None
        keys = [_q(k) for k in join_keys]
        order = f"{ts} DESC" + (f", {created} DESC NULLS LAST" if created else "")
        partition = ", ".join(keys) if keys else "NULL"
        narrow = ", ".join([*keys, ts, *([created] if created else [])])
        on = [f"t.{k} = w.{k}" for k in keys] + [f"t.{ts} = w.{ts}"]
        if created:
            on.append(f"t.{created} IS NOT DISTINCT FROM w.{created}")
        scan = _read_sql(target)
        sql = (
            f"WITH w AS (SELECT {narrow} FROM {scan} "
            f"WHERE CAST({ts} AS TIMESTAMPTZ) >= $start AND CAST({ts} AS TIMESTAMPTZ) <= $end "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1) "
            f"SELECT * FROM (SELECT t.* FROM {scan} t SEMI JOIN w ON {' AND '.join(on)}) "
            f"QUALIFY row_number() OVER (PARTITION BY {partition}) = 1"
        )
        conn = _connect()
        try:
            table = conn.sql(sql, params={"start": _utc(start), "end": _utc(end)}).to_arrow_table()
        finally:
            conn.close()
        _latest_cache[key] = table
        while len(_latest_cache) > _LATEST_CACHE_SIZE:
            _latest_cache.popitem(last=False)
        return table


def clear_latest_cache() -> None:
    with _latest_lock:
        _latest_cache.clear()


class ArrowRetrievalJob(RetrievalJob):
    """A RetrievalJob over an Arrow table computed on first use (on-demand views by Feast)."""

    def __init__(
        self,
        compute: Callable[[], pa.Table],
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        full_feature_names: bool = False,
        metadata: RetrievalMetadata | None = None,
        repo_path: str = "",
    ) -> None:
        super().__init__()
        self._compute = compute
        self._table: pa.Table | None = None
        self._odfvs = on_demand_feature_views or []
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._repo_path = repo_path

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        if self._table is None:
            self._table = self._compute()
        return self._table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_df(self, validation_reference: Any = None, timeout: int | None = None) -> pd.DataFrame:
        """Feast's `to_df` (on-demand views, validation, metrics) minus its `reset_index` copy:
        `to_pandas` already gives a RangeIndex (the copy is ~15% of a 1M-row retrieval)."""
        return self.to_arrow(validation_reference=validation_reference, timeout=timeout).to_pandas()

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        feast_duckdb._write_data_source(
            ibis.memtable(self._to_arrow_internal(timeout)),
            storage.to_data_source(),
            self._repo_path,
            "overwrite",
            allow_overwrite,
        )


# ---- point-in-time join --------------------------------------------------------------------


class _Unsupported(Exception):
    """A request the as-of join does not cover: Feast's own join answers it."""


def _plan(
    config: RepoConfig, feature_views: list[FeatureView], feature_refs: list[str], full: bool
):
    """Groups of views sharing one as-of join, and the output feature columns in Feast's order."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    outputs: list[tuple[str, pa.DataType]] = []
    for fv in feature_views:
        src = fv.batch_source
        if not _is_parquet_file_source(src):
            raise _Unsupported(f"{fv.name}: not a Parquet FileSource")
        prefix_to_use = fv.projection.name_to_use()
        refs = [r.split(":")[1] for r in feature_refs if r.startswith(f"{prefix_to_use}:")]
        if not refs:
            continue
        base = fv.projection.name_alias or fv.name
        keys = fv.projection.join_key_map or {e.name: e.name for e in fv.entity_columns}
        if "__dummy_id" in keys:
            raise _Unsupported(f"{fv.name}: entityless view")
        inverse = {new: old for old, new in (src.field_mapping or {}).items()}

        def col(name: str, inverse: dict = inverse) -> str:
            return inverse.get(name, name)

        ttl_us = int(fv.ttl.total_seconds() * 1_000_000) if fv.ttl else 0
        created = src.created_timestamp_column or ""
        target = scan_target(source_uri(src, config.repo_path))
        group = (
            target,
            col(src.timestamp_field),
            col(created) if created else "",
            ttl_us,
            tuple(sorted((col(k), v) for k, v in keys.items())),
        )
        types = {f.name: _pa_type(f) for f in fv.features}
        for ref in refs:
            alias = f"{base}__{ref}" if full else ref
            groups.setdefault(group, []).append((col(ref), alias))
            outputs.append((alias, types.get(ref, pa.null())))
    return groups, outputs


def _asof_features(entities: pd.DataFrame, groups: dict, event_col: str) -> pa.Table:
    """Feature columns, one row per entity row in input order.

    Per group: the source's needed columns are read once into Arrow with a row id; DuckDB's
    `ASOF LEFT JOIN` then runs on the narrow (key, event time, row id) only, and the features are
    gathered by row id with Arrow `take` (a null id = no row in time / in the TTL = nulls).
    Sorting and carrying 50 wide columns through the join cost ~2x more than this.
    """
    conn = _connect()
    try:
        conn.register("entities", pa.Table.from_pandas(entities, preserve_index=False))
        et = _q(event_col)
        out: dict[str, pa.ChunkedArray] = {}
        sources, ctes, joins, picks = [], [], [], []
        for i, ((target, ts_col, created_col, ttl_us, keys), cols) in enumerate(groups.items()):
            if target is None:
                continue  # no data yet: the columns are added as nulls
            key_cols = [k for k, _ in keys]
            feats = sorted({c for c, _ in cols} - set(key_cols))
            extra = [created_col] if created_col and created_col not in feats else []
            wanted = ", ".join(
                [*map(_q, key_cols), f"CAST({_q(ts_col)} AS TIMESTAMPTZ) AS __fts"]
                + [_q(c) for c in [*feats, *extra]]
            )
            data = conn.sql(f"SELECT {wanted} FROM {_read_sql(target)}").to_arrow_table()
            data = data.append_column("__rid", pa.array(np.arange(data.num_rows)))
            name = f"data{i}"
            conn.register(name, data)
            sources.append((i, data, cols))
            key_list = ", ".join(map(_q, key_cols))
            # Several rows per (key, event time): the latest created_timestamp wins (Feast's
            # rule). Checked first: the window sort is the most expensive step when not needed.
            dupes = bool(
                created_col
                and conn.execute(
                    f"SELECT count(*) > count(DISTINCT ({key_list}, __fts)) FROM {name}"
                ).fetchall()[0][0]
            )
            dedupe = (
                f"QUALIFY row_number() OVER (PARTITION BY {key_list}, __fts "
                f"ORDER BY {_q(created_col)} DESC NULLS LAST, __rid DESC) = 1"
                if dupes
                else ""
            )
            src = f"src{i}"
            ctes.append(f"{src} AS (SELECT {key_list}, __fts, __rid FROM {name} {dedupe})")
            on = " AND ".join(f"e.{_q(ent)} = {src}.{_q(k)}" for k, ent in keys)
            joins.append(f"ASOF LEFT JOIN {src} ON {on} AND e.{et} >= {src}.__fts")
            cond = f"{src}.__fts >= e.{et} - INTERVAL {ttl_us} MICROSECOND" if ttl_us else "TRUE"
            picks.append(f"CASE WHEN {cond} THEN {src}.__rid END AS __rid{i}")
        if not ctes:
            return pa.table({})
        sql = (
            f"WITH {', '.join(ctes)} SELECT {', '.join(picks)} "
            f"FROM entities e {' '.join(joins)} ORDER BY e.{_q(ROW_ID)}"
        )
        rids = conn.sql(sql).to_arrow_table()
        for i, data, cols in sources:
            index = rids[f"__rid{i}"]
            for source_col, alias in cols:
                out[alias] = data[source_col].take(index)
        return pa.table(out)
    finally:
        conn.close()


def asof_join(
    config: RepoConfig,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    full_feature_names: bool,
) -> tuple[Callable[[], pa.Table], str]:
    """The as-of join of `entity_df` with the views' features, as a deferred Arrow computation."""
    schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
    event_col = infer_event_timestamp_from_entity_df(schema)
    groups, outputs = _plan(config, feature_views, feature_refs, full_feature_names)
    needed = {ent for group in groups for _, ent in group[4]}
    missing = sorted(needed - set(entity_df.columns))
    if missing:
        raise ValueError(f"entity_df lacks join key column(s): {', '.join(missing)}")

    def compute() -> pa.Table:
        frame = entity_df.reset_index(drop=True)
        times = frame[event_col]
        if pd.api.types.is_string_dtype(times) or pd.api.types.is_object_dtype(times):
            frame = frame.assign(**{event_col: pd.to_datetime(times, utc=True)})
        probe = frame[sorted(needed)].copy()
        t = pd.to_datetime(frame[event_col], utc=True)
        probe[event_col] = t.dt.floor("us").astype("datetime64[us, UTC]")  # DuckDB precision
        probe[ROW_ID] = np.arange(len(frame))
        feats = _asof_features(probe, groups, event_col)
        out = pa.Table.from_pandas(frame, preserve_index=False)
        for alias, dtype in outputs:
            if alias in feats.column_names:
                out = out.append_column(alias, feats[alias])
            else:
                out = out.append_column(alias, pa.nulls(len(frame), dtype))
        return out

    return compute, event_col


class FinfeastDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with an as-of join, a shared latest scan and part directories."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        try:
            if not isinstance(entity_df, pd.DataFrame):
                raise _Unsupported("SQL entity_df")
            if any(fv.mode == "substrait" for fv in odfvs):
                raise _Unsupported("substrait on-demand view")
            if filter_by_created_timestamp and any(
                fv.batch_source is not None and fv.batch_source.created_timestamp_column
                for fv in feature_views
            ):
                raise _Unsupported("filter_by_created_timestamp")
            compute, event_col = asof_join(
                config, feature_views, feature_refs, entity_df, full_feature_names
            )
        except _Unsupported:
            return _feast_historical(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        times = pd.to_datetime(entity_df[event_col], utc=True)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=list(set(entity_df.columns) - {event_col}),
            min_event_timestamp=times.min().to_pydatetime() if len(times) else None,
            max_event_timestamp=times.max().to_pydatetime() if len(times) else None,
        )
        return ArrowRetrievalJob(
            compute, odfvs, full_feature_names, metadata, str(config.repo_path)
        )

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        if not _is_parquet_file_source(data_source) or _is_remote(data_source.path):
            return DuckDBOfflineStore.pull_latest_from_table_or_query(
                config,
                data_source,
                join_key_columns,
                feature_name_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
            )
        fields = [*join_key_columns, *feature_name_columns, timestamp_field]
        if created_timestamp_column:
            fields.append(created_timestamp_column)

        def compute() -> pa.Table:
            target = scan_target(source_uri(data_source, config.repo_path))
            if target is None:
                return pa.table({f: pa.array([], pa.null()) for f in fields})
            table = latest_rows(
                target,
                join_key_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
            )
            return table.select(fields)

        return ArrowRetrievalJob(compute, repo_path=str(config.repo_path))

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        if not _is_parquet_file_source(data_source) or _is_remote(data_source.path):
            return DuckDBOfflineStore.pull_all_from_table_or_query(
                config,
                data_source,
                join_key_columns,
                feature_name_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
            )
        fields = list(
            dict.fromkeys(
                [
                    *join_key_columns,
                    *feature_name_columns,
                    timestamp_field,
                    *([created_timestamp_column] if created_timestamp_column else []),
                ]
            )
        )

        def compute() -> pa.Table:
            target = scan_target(source_uri(data_source, config.repo_path))
            if target is None:
                return pa.table({f: pa.array([], pa.null()) for f in fields})
            ts = f"CAST({_q(timestamp_field)} AS TIMESTAMPTZ)"
            where, params = [], {}
            if start_date is not None:
                where.append(f"{ts} >= $start")
                params["start"] = _utc(start_date)
            if end_date is not None:
                where.append(f"{ts} <= $end")
                params["end"] = _utc(end_date)
            sql = f"SELECT {', '.join(map(_q, fields))} FROM {_read_sql(target)}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            conn = _connect()
            try:
                return conn.sql(sql, params=params).to_arrow_table()
            finally:
                conn.close()

        return ArrowRetrievalJob(compute, repo_path=str(config.repo_path))

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Append a batch: a new part file for directory sources, Feast's append otherwise."""
        src = feature_view.batch_source
        if _is_parquet_file_source(src) and not _is_remote(src.path):
            uri = source_uri(src, config.repo_path)
            if not uri.endswith(".parquet") or not os.path.exists(uri):
                if uri.endswith(".parquet"):
                    os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
                    pq.write_table(table, uri)
                else:
                    os.makedirs(uri, exist_ok=True)
                    name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
                    tmp = os.path.join(uri, f".{name}.tmp")
                    pq.write_table(table, tmp)
                    os.replace(tmp, os.path.join(uri, f"{name}.parquet"))
                if progress:
                    progress(table.num_rows)
                return
        DuckDBOfflineStore.offline_write_batch(config, feature_view, table, progress)

    def get_table_column_names_and_types_from_data_source(
        self, config: RepoConfig, data_source: DataSource
    ) -> Iterable[tuple[str, str]]:
        """Column names and types; a directory of parts reads the schema of its parts."""
        if _is_parquet_file_source(data_source) and not _is_remote(data_source.path):
            target = scan_target(source_uri(data_source, config.repo_path))
            if target is not None and _has_glob(target):
                conn = _connect()
                try:
                    rows = conn.execute(
                        f"DESCRIBE SELECT * FROM {_read_sql(target)} LIMIT 0"
                    ).fetchall()
                finally:
                    conn.close()
                return [(r[0], r[1]) for r in rows]
        return super().get_table_column_names_and_types_from_data_source(config, data_source)


def _feast_historical(
    config: RepoConfig,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame | str,
    registry: BaseRegistry,
    project: str,
    full_feature_names: bool,
    filter_by_created_timestamp: bool,
) -> IbisRetrievalJob:
    """Feast's own ibis join, with this store's source reader (relative paths, parts, missing)."""
    schemas = {
        fv.batch_source.name: _view_schema(fv)
        for fv in feature_views
        if _is_parquet_file_source(fv.batch_source)
    }
    return get_historical_features_ibis(
        config=config,
        feature_views=feature_views,
        feature_refs=feature_refs,
        entity_df=entity_df,
        registry=registry,
        project=project,
        full_feature_names=full_feature_names,
        data_source_reader=_reader_with_missing(schemas),
        data_source_writer=feast_duckdb._write_data_source,
        staging_location=config.offline_store.staging_location,
        staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        filter_by_created_timestamp=filter_by_created_timestamp,
    )
