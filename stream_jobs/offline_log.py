"""The offline log of stream rows: the same rows the job pushes online, appended per batch.

Why append-only: a batch's write must cost O(batch), whatever the log's size, and concurrent job
processes must not serialise on a lock. Locally each batch writes one Parquet part
`<offline_dir>/<log_table>/part-<time>-<pid>-<seq>.parquet` (written to a temp name, then renamed,
so a reader never sees half a part); in prod each batch is one COPY into a PostgreSQL table with no
primary key. Redelivered events (at-least-once) therefore appear more than once in storage:
readers deduplicate by (entity, event_timestamp) keeping the row written last (largest
`created_timestamp`, then the latest part), which is what Feast's point-in-time join does too
(`created_timestamp` is the tie-breaker of the push sources' batch sources).
`compact()` (`finfeast stream compact`) rewrites the parts of a table into one deduplicated part.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from finfeast.offline import WriteResult, open_tables
from stream_jobs import pg_copy
from stream_jobs.online_writer import Row, ViewSpec

if TYPE_CHECKING:
    from stream_jobs.view_rows import FeatureBlock

MARKET_LOG = "stream_market_log"
ACCOUNT_LOG = "stream_account_log"
PART_GLOB = "part-*.parquet"

_seq = itertools.count()


def part_options(key: str | None) -> dict[str, Any]:
    """`pq.write_table` options of a log part: zstd level 1, dictionaries for the join key only.

    Why: a part is written on every log flush; dictionary-encoding 130 float columns whose values
    rarely repeat cost ~40% of the write and made parts larger, and zstd's level 1 is ~as small
    as its default here. Readers (DuckDB, pyarrow) need nothing special.
    """
    return {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": [key] if key else False,
    }


def log_frame(
    view: ViewSpec,
    keys: Sequence[Any],
    event_ms: Sequence[int],
    column: Callable[[str, str], Any],
    created: datetime | None = None,
) -> pd.DataFrame:
    """The one log-frame layout: join key, event_timestamp (UTC), created_timestamp, one column
    per feature in the view's dtype (float64 with NaN, nullable Int64, nullable boolean).
    `column(name, dtype)` gives a feature's values; both the row path (`rows_to_frame`) and the
    array path (`view_rows.FeatureBlock.log_frame`) build their frames here."""
    created = created or datetime.now(UTC)
    data: dict[str, Any] = {
        view.join_key: keys,
        "event_timestamp": pd.to_datetime(event_ms, unit="ms", utc=True),
        "created_timestamp": pd.Series([created] * len(keys), dtype="datetime64[us, UTC]").array,
    }
    for name, dtype in view.features:
        kind = {"float64": "float64", "int64": "Int64"}.get(dtype, "boolean")
        data[name] = pd.array(column(name, dtype), dtype=kind)
    return pd.DataFrame(data)


def rows_to_frame(
    view: ViewSpec, rows: Sequence[Row], created: datetime | None = None
) -> pd.DataFrame:
    """A log frame (`log_frame`) of per-row dicts (a missing float is NaN)."""

    def column(name: str, dtype: str) -> list[Any]:
        values = [r[2].get(name) for r in rows]
        if dtype == "float64":
            return [float("nan") if v is None else v for v in values]
        return values

    return log_frame(view, [r[0] for r in rows], [r[1] for r in rows], column, created)


def dedupe(df: pd.DataFrame, join_key: str) -> pd.DataFrame:
    """The latest written row per (entity, event_timestamp), sorted by (entity, event_timestamp).

    `df` is in write order (parts in name order, rows in batch order); ties on
    `created_timestamp` keep the later-written row.
    """
    if df.empty:
        return df.reset_index(drop=True)
    df = df.reset_index(drop=True)
    df["_pos"] = range(len(df))
    order = ["created_timestamp", "_pos"] if "created_timestamp" in df.columns else ["_pos"]
    df = df.sort_values(order, kind="stable")
    df = df.drop_duplicates([join_key, "event_timestamp"], keep="last")
    df = df.sort_values([join_key, "event_timestamp"], kind="stable")
    return df.drop(columns="_pos").reset_index(drop=True)


class OfflineLog:
    """Appends stream rows to the offline log tables; reads them back deduplicated."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tables = open_tables(settings)
        self.root = Path(settings.offline_dir)
        self._conn: Any = None  # prod: one connection kept open across batches
        self._ready: set[str] = set()  # prod: tables whose columns are known to exist
        self._types: dict[str, dict[str, str]] = {}  # prod: their column types (binary COPY)
        self._schemas: dict[Any, pa.Schema] = {}  # local: Arrow schema of a view's log parts

    # ---- layout -------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        """Local: the directory of a log table's parts (the push source's FileSource path)."""
        if not table.replace("_", "").isalnum():
            raise FinfeastError(f"bad offline log table name {table!r}")
        return self.root / table

    def parts(self, table: str) -> list[Path]:
        return sorted(self.table_dir(table).glob(PART_GLOB))

    # ---- writes -------------------------------------------------------------------------
    def append(self, table: str, view: ViewSpec, rows: Sequence[Row]) -> WriteResult | None:
        if not rows:
            return None
        return self.append_frame(table, view, rows_to_frame(view, rows))

    def append_frame(self, table: str, view: ViewSpec, df: pd.DataFrame) -> WriteResult | None:
        """Append a log frame (join key, event_timestamp, created_timestamp, features): O(batch)."""
        if df.empty:
            return None
        df = df.drop_duplicates([view.join_key, "event_timestamp"], keep="last")
        if self.settings.profile == "prod":
            return self._append_pg(table, view, df)
        self._write_part(table, df, view.join_key)
        return WriteResult(table, len(df), 0, -1)

    def _write_part(
        self, table: str, data: pd.DataFrame | pa.Table, key: str | None = None
    ) -> Path:
        folder = self.table_dir(table)
        folder.mkdir(parents=True, exist_ok=True)
        # Name order = write order within a process (time, then a per-process sequence number).
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{next(_seq):08d}"
        tmp = folder / f".{name}.tmp"
        path = folder / f"{name}.parquet"
        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, preserve_index=False)
        pq.write_table(data, tmp, **part_options(key))
        tmp.replace(path)
        return path

    def append_sources(
        self, table: str, view: ViewSpec, sources: list[FeatureBlock]
    ) -> WriteResult | None:
        """One append straight from processor arrays (`view_rows.FeatureBlock`): prod one binary
        COPY (`pg_copy.encode_sources`), local one Parquet part built as an Arrow table with the
        frame path's schema. None when that path does not apply (a block not in the view's
        layout or holding an (entity, time) twice; prod: a table not yet known on this
        connection, or of other column types): the caller appends the log frames."""
        if not sources or any(not s.fits(view) or s.has_repeats() for s in sources):
            return None
        if self.settings.profile != "prod":
            arrow = self._arrow_of(view, sources)
            self._write_part(table, arrow, view.join_key)
            return WriteResult(table, arrow.num_rows, 0, -1)
        if table not in self._ready:
            return None
        if self._conn is None or self._conn.closed:
            return None
        payload = pg_copy.encode_sources(sources, view.join_key, time.time_ns() // 1000)
        if not pg_copy.matches(payload.types, self._types[table]):
            return None
        rows = sum(len(s) for s in sources)
        return self._copy_pg(table, payload, rows)

    def _arrow_of(self, view: ViewSpec, sources: list[FeatureBlock]) -> pa.Table:
        """The Arrow table `pa.Table.from_pandas(log frame)` would give (same schema, NaN as
        null), built from whole arrays (blocks already checked by `append_sources`)."""
        from stream_jobs.view_rows import FeatureBlock

        block = FeatureBlock.concat(sources)
        layout = (view, block.float_names, block.int_names)
        schema = self._schemas.get(layout)
        if schema is None:
            sample = block.take(np.arange(1)).log_frame(view)
            schema = self._schemas[layout] = pa.Table.from_pandas(
                sample, preserve_index=False
            ).schema
        # block k is created 1 us after block k-1, as in the prod path (`encode_sources`): a
        # later batch's row wins a tie on (entity, event time) in both profiles
        created = time.time_ns() // 1000 + np.repeat(
            np.arange(len(sources), dtype=np.int64), [len(s) for s in sources]
        )
        cols = {
            view.join_key: block.keys,
            "event_timestamp": block.event_ms * 1_000_000,
            "created_timestamp": created,
        }
        cols.update({f: block.floats[:, j] for j, f in enumerate(block.float_names)})
        cols.update({f: block.ints[:, j] for j, f in enumerate(block.int_names)})
        arrays = []
        for field in schema:
            values = cols[field.name]
            if pa.types.is_timestamp(field.type):
                arrays.append(pa.array(values, type=pa.int64()).cast(field.type))
            else:
                arrays.append(pa.array(values, type=field.type, from_pandas=True))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _append_pg(self, table: str, view: ViewSpec, df: pd.DataFrame) -> WriteResult:
        """One binary COPY (`stream_jobs.pg_copy`; CSV COPY if a column cannot go binary) into a
        table without a primary key (plain append; reads dedupe), on a connection kept open
        across batches (a connect per batch cost more than the COPY)."""
        import psycopg

        tables = self.tables
        try:
            if self._conn is None or self._conn.closed:
                self._conn = tables._connect()  # noqa: SLF001 - the same connection/COPY helpers
                self._ready.clear()
                self._types.clear()
            conn = self._conn
            if table not in self._ready:
                tables._create(conn, table, df, None)  # noqa: SLF001
                self._types[table] = tables._columns(conn, table)  # noqa: SLF001
                conn.commit()
                self._ready.add(table)
        except psycopg.Error:
            self._reset()  # the retry policy calls again: reconnect then
            raise
        payload = pg_copy.encode(df, view.join_key)
        if payload is not None and pg_copy.matches(payload.types, self._types[table]):
            result = self._copy_pg(table, payload, len(df))
        else:  # a column type the binary encoder does not write (or an older table's type)
            result = self._copy_pg(table, None, len(df), df)
        if result is None:  # a log created before the append-only layout has a primary key
            return self.tables.upsert(table, df, key=[view.join_key, "event_timestamp"])
        return result

    def _copy_pg(
        self,
        table: str,
        payload: pg_copy.Payload | None,
        rows: int,
        df: pd.DataFrame | None = None,
    ) -> WriteResult | None:
        """COPY a binary payload (or `df` as CSV) and commit; None on a primary-key conflict."""
        import psycopg

        conn = self._conn
        try:
            if payload is not None:
                with conn.cursor() as cur:
                    cols = ", ".join(f'"{c}"' for c in payload.columns)
                    with cur.copy(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT binary)') as cp:
                        cp.write(payload.data)
            else:
                self.tables._copy(conn, table, df)  # noqa: SLF001
            conn.commit()
        except psycopg.errors.UniqueViolation:
            self._reset()
            return None
        except psycopg.Error:
            self._reset()  # the retry policy calls again: reconnect then
            raise
        return WriteResult(table, rows, 0, -1)

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None
        self._ready.clear()
        self._types.clear()

    def close(self) -> None:
        self._reset()

    # ---- reads --------------------------------------------------------------------------
    def read_raw(self, table: str) -> pd.DataFrame:
        """Every stored row (duplicates included), in write order."""
        if self.settings.profile == "prod":
            return self.tables.read(table)
        parts = self.parts(table)
        if not parts:
            legacy = self.root / f"{table}.parquet"
            if legacy.exists():
                return pq.read_table(legacy).to_pandas()
            raise FinfeastError(f"offline log {table!r} has no rows yet ({self.table_dir(table)})")
        frames = [pq.read_table(p).to_pandas() for p in parts]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def read(self, table: str, join_key: str | None = None) -> pd.DataFrame:
        """The log deduplicated by (entity, event_timestamp), latest write wins."""
        df = self.read_raw(table)
        key = join_key or df.columns[0]
        return dedupe(df, key)

    def compact(self, table: str, join_key: str | None = None) -> tuple[int, int]:
        """Rewrite a table's parts as one deduplicated part; (rows before, rows after).

        Local: the new part is written first, then the parts it replaces are deleted, so a
        reader sees every row at any moment (perhaps twice, which its dedup absorbs). Parts
        appended meanwhile by a running job are left alone. Prod: the table is rewritten in one
        transaction (DELETE of duplicates by ctid).
        """
        if self.settings.profile == "prod":
            return self._compact_pg(table, join_key)
        parts = self.parts(table)
        if not parts:
            return 0, 0
        frames = [pq.read_table(p).to_pandas() for p in parts]
        raw = pd.concat(frames, ignore_index=True)
        key = join_key or raw.columns[0]
        out = dedupe(raw, key)
        # Named after the newest part it replaces (+1 ns): parts written later still sort after it.
        last = parts[-1].name.split("-")[1]
        name = f"part-{int(last) + 1:020d}-{os.getpid()}-compacted"
        folder = self.table_dir(table)
        tmp = folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(out, preserve_index=False), tmp, **part_options(key))
        tmp.replace(folder / f"{name}.parquet")
        for p in parts:
            p.unlink(missing_ok=True)
        return len(raw), len(out)

    def _compact_pg(self, table: str, join_key: str | None) -> tuple[int, int]:
        tables = self.tables
        with tables._connect() as conn:  # noqa: SLF001
            cols = tables._columns(conn, table)  # noqa: SLF001
            if not cols:
                return 0, 0
            key = join_key or next(iter(cols))
            before = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            order = (
                '"created_timestamp" DESC, ctid DESC'
                if "created_timestamp" in cols
                else "ctid DESC"
            )
            conn.execute(
                f'DELETE FROM "{table}" WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() '
                f'OVER (PARTITION BY "{key}", "event_timestamp" ORDER BY {order}) AS n '
                f'FROM "{table}") d WHERE n > 1)'
            )
            after = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        return int(before), int(after)
