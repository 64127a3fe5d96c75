"""The offline table layer: named tables keyed by columns, as Parquet files or PostgreSQL tables.

Why: ingestion, transforms and the stream jobs all write keyed tables (idempotent upserts) and
read them back, and the profile decides where they live. Local profile: one Parquet file per table
under `Settings.offline_dir` (DuckDB/Feast read them directly). Prod profile: one PostgreSQL table
per table, bulk-loaded with COPY into a staging table and merged with `INSERT ... ON CONFLICT`.
Both back ends give the same upsert semantics: a row whose key already exists replaces the old
row, so re-running a load never duplicates anything.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from finfeast.config import Settings
from finfeast.errors import FinfeastError, ServiceUnavailable

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise FinfeastError(f"invalid table or column name {name!r}")
    return name


@dataclass(frozen=True)
class WriteResult:
    """What an upsert did: rows that were new keys, rows that replaced a key, rows now stored."""

    table: str
    rows_inserted: int
    rows_updated: int
    rows_total: int


class OfflineTables(Protocol):
    """Keyed tables of one profile's offline store."""

    def exists(self, table: str) -> bool: ...

    def read(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame: ...

    def upsert(
        self, table: str, df: pd.DataFrame, key: Sequence[str], ignore: Sequence[str] = ()
    ) -> WriteResult: ...

    def replace(self, table: str, df: pd.DataFrame) -> WriteResult: ...

    def drop(self, table: str) -> None: ...


def _sorted(df: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """Rows in key order. lexsort over factorized codes: much faster than sort_values on strings."""
    if len(df) < 2:
        return df.reset_index(drop=True)
    codes = [pd.factorize(df[k], sort=True)[0] for k in reversed(list(key))]
    return df.take(np.lexsort(codes)).reset_index(drop=True)


def _merge_plan(
    old: pd.DataFrame, new: pd.DataFrame, key: list[str], compare: list[str]
) -> tuple[pd.DataFrame, int, int]:
    """Merge `new` into `old` by key. A new row identical to the stored one on `compare` keeps the
    stored row (so columns outside `compare`, such as an ingestion time, do not change).
    Returns (merged rows, rows inserted, rows updated)."""
    combined = pd.concat([old, new], ignore_index=True)
    is_new = np.zeros(len(combined), dtype=bool)
    is_new[len(old) :] = True
    key_dup = combined.duplicated(key, keep=False).to_numpy()
    same = combined.duplicated(compare, keep=False).to_numpy()
    inserted = int((is_new & ~key_dup).sum())
    updated = int((is_new & key_dup & ~same).sum())
    drop = (~is_new & key_dup & ~same) | (is_new & same)
    return combined[~drop], inserted, updated


class ParquetTables:
    """One Parquet file per table; writes go to a temp file then an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, table: str) -> Path:
        return self.root / f"{_check_ident(table)}.parquet"

    def exists(self, table: str) -> bool:
        return self.path(table).exists()

    def read(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        p = self.path(table)
        if not p.exists():
            raise FinfeastError(f"offline table {table!r} does not exist yet ({p})")
        return pq.read_table(p, columns=list(columns) if columns else None).to_pandas()

    def _write(self, table: str, df: pd.DataFrame) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(table)
        tmp = p.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, compression="zstd")
        tmp.replace(p)

    def upsert(
        self, table: str, df: pd.DataFrame, key: Sequence[str], ignore: Sequence[str] = ()
    ) -> WriteResult:
        """Insert new keys, replace changed rows; rows equal except for `ignore` columns stay.

        Nothing is rewritten when no row is new or changed, so a repeated load is a no-op.
        """
        key = list(key)
        df = df.drop_duplicates(key, keep="last")
        if not self.exists(table):
            self._write(table, _sorted(df, key))
            return WriteResult(table, len(df), 0, len(df))
        old = self.read(table)
        columns = list(old.columns) + [c for c in df.columns if c not in old.columns]
        grew = len(columns) > len(old.columns)
        old = old.reindex(columns=columns)
        new = df.reindex(columns=columns)
        compare = [c for c in columns if c not in set(ignore)]
        merged, inserted, updated = _merge_plan(old, new, key, compare)
        if inserted == 0 and updated == 0 and not grew:
            return WriteResult(table, 0, 0, len(old))
        merged = _sorted(merged, key)
        self._write(table, merged)
        return WriteResult(table, inserted, updated, len(merged))

    def replace(self, table: str, df: pd.DataFrame) -> WriteResult:
        self._write(table, df.reset_index(drop=True))
        return WriteResult(table, len(df), 0, len(df))

    def drop(self, table: str) -> None:
        self.path(table).unlink(missing_ok=True)


def _pg_type(series: pd.Series) -> str:
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "boolean"
    if pd.api.types.is_integer_dtype(dt):
        return "bigint"
    if pd.api.types.is_float_dtype(dt):
        return "double precision"
    if isinstance(dt, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_datetime64_dtype(dt):
        return "timestamp"
    return "text"


class PostgresTables:
    """PostgreSQL tables loaded with COPY (staging table + INSERT ... ON CONFLICT)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _connect(self):  # noqa: ANN202 - psycopg connection
        import psycopg

        try:
            return psycopg.connect(self.dsn, connect_timeout=5)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServiceUnavailable(f"PostgreSQL unreachable ({self.dsn}): {first}") from exc

    def exists(self, table: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT to_regclass(%s)", (_check_ident(table),)).fetchone()
            return row is not None and row[0] is not None

    def read(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        cols = ", ".join(f'"{_check_ident(c)}"' for c in columns) if columns else "*"
        if not self.exists(table):
            raise FinfeastError(f"offline table {table!r} does not exist yet in PostgreSQL")
        with self._connect() as conn:
            cur = conn.execute(f'SELECT {cols} FROM "{_check_ident(table)}"')
            names = [d.name for d in cur.description]
            df = pd.DataFrame(cur.fetchall(), columns=names)
        return _normalise_pg_frame(df)

    def _create(self, conn, table: str, df: pd.DataFrame, key: Sequence[str] | None) -> None:  # noqa: ANN001
        cols = ", ".join(f'"{_check_ident(c)}" {_pg_type(df[c])}' for c in df.columns)
        pk = f", PRIMARY KEY ({', '.join(chr(34) + k + chr(34) for k in key)})" if key else ""
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({cols}{pk})')

    @staticmethod
    def _copy(conn, table: str, df: pd.DataFrame) -> None:  # noqa: ANN001
        buf = io.StringIO()
        out = df.copy()
        for c in out.columns:
            if isinstance(out[c].dtype, pd.DatetimeTZDtype):
                out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        out.to_csv(buf, index=False, header=False, na_rep="\\N")
        cols = ", ".join(f'"{c}"' for c in df.columns)
        with conn.cursor() as cur:
            with cur.copy(
                f"COPY \"{table}\" ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
            ) as cp:
                cp.write(buf.getvalue())

    def upsert(self, table: str, df: pd.DataFrame, key: Sequence[str]) -> WriteResult:
        table = _check_ident(table)
        key = list(key)
        df = df.drop_duplicates(key, keep="last")
        with self._connect() as conn:
            self._create(conn, table, df, key)
            stage = f"_stage_{table}"
            conn.execute(
                f'CREATE TEMP TABLE "{stage}" (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP'
            )
            self._copy(conn, stage, df)
            cols = ", ".join(f'"{c}"' for c in df.columns)
            non_key = [c for c in df.columns if c not in key]
            sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in non_key) or None
            conflict = f"ON CONFLICT ({', '.join(chr(34) + k + chr(34) for k in key)}) "
            conflict += f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
            res = conn.execute(
                f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{stage}" {conflict} '
                "RETURNING (xmax = 0) AS inserted"
            ).fetchall()
            inserted = sum(1 for r in res if r[0])
            total = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        return WriteResult(table, inserted, len(res) - inserted, int(total))

    def replace(self, table: str, df: pd.DataFrame) -> WriteResult:
        table = _check_ident(table)
        with self._connect() as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            self._create(conn, table, df, None)
            self._copy(conn, table, df)
        return WriteResult(table, len(df), 0, len(df))

    def drop(self, table: str) -> None:
        with self._connect() as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{_check_ident(table)}"')


def _normalise_pg_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Give PostgreSQL results the dtypes Parquet round trips give (UTC timestamps, floats)."""
    for c in df.columns:
        s = df[c]
        if s.dtype == object and len(s):
            first = s.dropna().iloc[0] if s.notna().any() else None
            if hasattr(first, "tzinfo") and hasattr(first, "year"):
                df[c] = pd.to_datetime(s, utc=True)
            elif isinstance(first, float):
                df[c] = s.astype("float64")
    return df


def open_tables(settings: Settings) -> OfflineTables:
    """The offline tables of the settings' profile."""
    if settings.profile == "prod":
        return PostgresTables(settings.pg_dsn)
    return ParquetTables(settings.offline_dir)


def ensure_database(settings: Settings) -> None:
    """Create the profile's PostgreSQL database if missing (prod); clear error if PG is down."""
    if settings.profile != "prod":
        return
    import psycopg

    admin = settings.pg_dsn.replace(f"dbname={settings.pg_db}", "dbname=postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_db,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{_check_ident(settings.pg_db)}"')
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"PostgreSQL unreachable at {settings.pg_host}:{settings.pg_port}: {first}"
        ) from exc
