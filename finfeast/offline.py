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
import pyarrow.csv as pacsv
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


def _sort_codes(s: pd.Series) -> np.ndarray:
    """Integers that sort like `s`: timestamps and numbers as they are (no hashing), text and
    anything else through a sorted factorize."""
    if isinstance(s.dtype, pd.DatetimeTZDtype) or s.dtype.kind == "M":
        return s.to_numpy(dtype="datetime64[ns]").view("int64")
    if s.dtype.kind in "iub":
        return s.to_numpy()
    return pd.factorize(s, sort=True)[0]


def _key_order(
    df: pd.DataFrame, key: Sequence[str], last_per_key: bool = False
) -> np.ndarray | None:
    """Positions of `df`'s rows in key order (lexsort, stable), None when already in order.

    With `last_per_key`, rows repeating a key are left out except the last one: equal keys are
    adjacent after the stable sort, so this costs one comparison per key column instead of a
    separate hashing pass (the codes are exact, so no collision can drop a row).
    """
    n = len(df)
    if n < 2:
        return None
    codes = [_sort_codes(df[k]) for k in reversed(list(key))]
    order = np.lexsort(codes)
    if last_per_key:
        same = np.ones(n - 1, dtype=bool)
        for c in codes:
            ordered = c[order]
            same &= ordered[1:] == ordered[:-1]
        if same.any():
            return order[np.append(~same, True)]
    return None if bool((order[1:] > order[:-1]).all()) else order


def _last_per_key(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """`df` with one row per key (the last), exact; hashing first keeps the common case
    (no duplicates at all) cheap."""
    if len(df) < 2:
        return df
    hashes = pd.util.hash_pandas_object(df[key], index=False)
    candidates = hashes.duplicated(keep=False).to_numpy()
    if not candidates.any():
        return df
    drop = np.zeros(len(df), dtype=bool)
    drop[candidates] = df[key].iloc[np.flatnonzero(candidates)].duplicated(keep="last").to_numpy()
    return df[~drop]


def _merge_plan(
    old: pd.DataFrame, new: pd.DataFrame, key: list[str], compare: list[str]
) -> tuple[pd.DataFrame, int, int]:
    """Merge `new` into `old` by key. A new row identical to the stored one on `compare` keeps the
    stored row (so columns outside `compare`, such as an ingestion time, do not change).
    Returns (merged rows, rows inserted, rows updated).

    Keys are matched through 64-bit row hashes (one integer hash table instead of factorizing
    string columns), then every match is verified on the real key values; on a hash collision
    the exact (slower) path is taken, so a collision can never merge two different keys.
    """
    # positions, not index labels, are used below, so no reset_index copies are needed
    old_hash = pd.util.hash_pandas_object(old[key], index=False).to_numpy()
    new_hash = pd.util.hash_pandas_object(new[key], index=False).to_numpy()
    index = pd.Index(old_hash)
    if not index.is_unique:
        return _merge_plan_exact(old, new, key, compare)
    pos = index.get_indexer(new_hash)
    matched = pos >= 0
    at_old, at_new = pos[matched], np.flatnonzero(matched)
    if not all(_equal(_values(old[c])[at_old], _values(new[c])[at_new]).all() for c in key):
        return _merge_plan_exact(old, new, key, compare)
    same = np.ones(len(at_new), dtype=bool)
    for c in compare:
        if c not in key:
            same &= _equal(_values(old[c])[at_old], _values(new[c])[at_new])
    changed = np.zeros(len(new), dtype=bool)
    changed[at_new[~same]] = True
    inserted = ~matched
    n_inserted, n_changed = int(inserted.sum()), int(changed.sum())
    if n_inserted == 0 and n_changed == 0:  # the idempotent re-run: no concat copy of the table
        return old, 0, 0
    drop_old = np.zeros(len(old), dtype=bool)
    drop_old[at_old[~same]] = True
    merged = pd.concat([old[~drop_old], new[inserted | changed]], ignore_index=True)
    return merged, n_inserted, n_changed


def _values(s: pd.Series) -> np.ndarray:
    """A numpy view fit for element-wise comparison (tz-aware timestamps as UTC datetime64)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.to_numpy(dtype="datetime64[ns]")
    return s.to_numpy()


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality where two missing values (None/NaN/NaT) count as equal."""
    eq = np.asarray(a == b, dtype=bool)
    differ = np.flatnonzero(~eq)
    if len(differ):  # only mismatches can be two missing values
        eq[differ] = np.asarray(pd.isna(a[differ]) & pd.isna(b[differ]), dtype=bool)
    return eq


def _merge_plan_exact(
    old: pd.DataFrame, new: pd.DataFrame, key: list[str], compare: list[str]
) -> tuple[pd.DataFrame, int, int]:
    combined = pd.concat([old, new], ignore_index=True)
    is_new = np.zeros(len(combined), dtype=bool)
    is_new[len(old) :] = True
    key_dup = combined.duplicated(key, keep=False).to_numpy()
    same = combined.duplicated(compare, keep=False).to_numpy()
    inserted = int((is_new & ~key_dup).sum())
    updated = int((is_new & key_dup & ~same).sum())
    drop = (~is_new & key_dup & ~same) | (is_new & same)
    return combined[~drop], inserted, updated


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """Arrow table of `df`; an object column with no values is typed string (not `null`), so an
    empty or all-missing text column keeps a usable type for DuckDB/Feast."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return table


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

    def _write(self, table: str, df: pd.DataFrame, order: np.ndarray | None = None) -> None:
        """Write the rows of `df` at positions `order` (all, as they are, when None). The rows
        are picked in Arrow, after the conversion: cheaper than reordering pandas object
        columns first."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(table)
        tmp = p.with_suffix(".parquet.tmp")
        arrow = _to_arrow(df)
        if order is not None:
            arrow = arrow.take(order)
        pq.write_table(arrow, tmp, compression="zstd")
        tmp.replace(p)

    def upsert(
        self, table: str, df: pd.DataFrame, key: Sequence[str], ignore: Sequence[str] = ()
    ) -> WriteResult:
        """Insert new keys, replace changed rows; rows equal except for `ignore` columns stay.

        Nothing is rewritten when no row is new or changed, so a repeated load is a no-op.
        """
        key = list(key)
        if not self.exists(table):  # one sort gives both the key order and the last per key
            order = _key_order(df, key, last_per_key=True)
            self._write(table, df, order)
            n = len(df) if order is None else len(order)
            return WriteResult(table, n, 0, n)
        df = _last_per_key(df, key)
        old = self.read(table)
        columns = list(old.columns) + [c for c in df.columns if c not in old.columns]
        grew = len(columns) > len(old.columns)
        if grew:
            old = old.reindex(columns=columns)
        new = df if list(df.columns) == columns else df.reindex(columns=columns)
        compare = [c for c in columns if c not in set(ignore)]
        merged, inserted, updated = _merge_plan(old, new, key, compare)
        if inserted == 0 and updated == 0 and not grew:
            return WriteResult(table, 0, 0, len(old))
        self._write(table, merged, _key_order(merged, key))
        return WriteResult(table, inserted, updated, len(merged))

    def replace(self, table: str, df: pd.DataFrame) -> WriteResult:
        self._write(table, df.reset_index(drop=True))
        return WriteResult(table, len(df), 0, len(df))

    def drop(self, table: str) -> None:
        self.path(table).unlink(missing_ok=True)


def lock_ddl(conn, name: str) -> None:  # noqa: ANN001 - psycopg connection
    """Serialise `CREATE TABLE IF NOT EXISTS` / `ALTER TABLE` of one table across processes.

    PostgreSQL's IF NOT EXISTS is not atomic: two sessions creating the same new table at once
    can fail with a UniqueViolation on `pg_type` (two stream processes starting on a new
    database did). A transaction-scoped advisory lock per table name makes the second wait and
    then find the table; the lock is released at the transaction's commit.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


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
    """PostgreSQL tables bulk-loaded with COPY (staging table + INSERT ... ON CONFLICT).

    Rows travel as CSV written and read by Arrow's C++ CSV code (not pandas), so both directions
    run at hundreds of thousands of rows per second.
    """

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

    @staticmethod
    def _columns(conn, table: str) -> dict[str, str]:  # noqa: ANN001
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    def read(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        table = _check_ident(table)
        with self._connect() as conn:
            types = self._columns(conn, table)
            if not types:
                raise FinfeastError(f"offline table {table!r} does not exist yet in PostgreSQL")
            names = [_check_ident(c) for c in columns] if columns else list(types)
            missing = [c for c in names if c not in types]
            if missing:
                raise FinfeastError(f"offline table {table!r} has no column(s) {missing}")
            select = ", ".join(_pg_select(c, types[c]) for c in names)
            buf = io.BytesIO()
            with conn.cursor() as cur:
                sql = f'COPY (SELECT {select} FROM "{table}") TO STDOUT WITH (FORMAT csv, HEADER true)'
                with cur.copy(sql) as cp:
                    for chunk in cp:
                        buf.write(chunk)
        arrow_types = {c: _ARROW_FROM_PG.get(types[c], pa.string()) for c in names}
        buf.seek(0)
        if buf.getbuffer().nbytes == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        parsed = pacsv.read_csv(
            buf,
            convert_options=pacsv.ConvertOptions(
                column_types=arrow_types,
                null_values=[""],  # COPY writes NULL as an unquoted empty field; "NA" is a ticker
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t", "true"],
                false_values=["f", "false"],
            ),
        )
        return _to_pandas(parsed)

    def _create(self, conn, table: str, df: pd.DataFrame, key: Sequence[str] | None) -> None:  # noqa: ANN001
        cols = ", ".join(f'"{_check_ident(c)}" {_pg_type(df[c])}' for c in df.columns)
        pk = f", PRIMARY KEY ({_quoted(key)})" if key else ""
        lock_ddl(conn, table)
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({cols}{pk})')
        existing = self._columns(conn, table)
        for c in df.columns:
            if c not in existing:
                conn.execute(
                    f'ALTER TABLE "{table}" ADD COLUMN "{_check_ident(c)}" {_pg_type(df[c])}'
                )

    @staticmethod
    def _copy(conn, table: str, df: pd.DataFrame) -> None:  # noqa: ANN001
        """COPY `df` into `table` as CSV written by Arrow (nulls unquoted, values quoted)."""
        buf = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_pandas(_timestamps_as_text(df), preserve_index=False),
            buf,
            pacsv.WriteOptions(include_header=False, quoting_style="all_valid"),
        )
        with conn.cursor() as cur:
            with cur.copy(
                f'COPY "{table}" ({_quoted(df.columns)}) FROM STDIN WITH (FORMAT csv)'
            ) as cp:
                cp.write(buf.getbuffer())

    def upsert(
        self, table: str, df: pd.DataFrame, key: Sequence[str], ignore: Sequence[str] = ()
    ) -> WriteResult:
        """COPY into a staging table, then INSERT ... ON CONFLICT DO UPDATE only where a value
        outside `ignore` differs, so an unchanged row keeps its stored version."""
        table = _check_ident(table)
        key = list(key)
        df = _last_per_key(df, key)
        with self._connect() as conn:
            lock_ddl(conn, table)  # "is it new?" and its creation decided by one writer at a time
            if not self._columns(conn, table):  # new table: load first, index once afterwards
                self._create(conn, table, df, None)
                self._copy(conn, table, df)
                conn.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY ({_quoted(key)})')
                return WriteResult(table, len(df), 0, len(df))
            self._create(conn, table, df, key)
            empty = conn.execute(f'SELECT NOT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]
            if empty:  # first load: no conflicts possible, COPY straight into the table
                self._copy(conn, table, df)
                return WriteResult(table, len(df), 0, len(df))
            stage = f"_stage_{table}"
            conn.execute(
                f'CREATE TEMP TABLE "{stage}" (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP'
            )
            self._copy(conn, stage, df)
            cols = _quoted(df.columns)
            non_key = [c for c in df.columns if c not in key]
            compare = [c for c in non_key if c not in set(ignore)]
            if non_key:
                sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in non_key)
                action = f"DO UPDATE SET {sets}"
                if compare:
                    old = ", ".join(f't."{c}"' for c in compare)
                    new = ", ".join(f'EXCLUDED."{c}"' for c in compare)
                    action += f" WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
            else:
                action = "DO NOTHING"
            inserted, updated = conn.execute(
                f'WITH w AS (INSERT INTO "{table}" AS t ({cols}) SELECT {cols} FROM "{stage}" '
                f"ON CONFLICT ({_quoted(key)}) {action} RETURNING (xmax = 0) AS ins) "
                "SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM w"
            ).fetchone()
            total = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        return WriteResult(table, int(inserted), int(updated), int(total))

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


def _timestamps_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns as ISO text, formatted once per distinct value (Arrow's CSV writer
    formats each timestamp on its own at ~1 M/s; a table has few distinct timestamps)."""
    out = None
    for c in df.columns:
        s = df[c]
        if not (isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s)):
            continue
        out = df.copy() if out is None else out
        utc = s.dt.tz_convert("UTC") if isinstance(s.dtype, pd.DatetimeTZDtype) else s
        uniq, inverse = np.unique(
            utc.dt.tz_localize(None).to_numpy(dtype="datetime64[us]"), return_inverse=True
        )
        suffix = "+00" if isinstance(s.dtype, pd.DatetimeTZDtype) else ""
        stamps = pd.DatetimeIndex(uniq)
        text = np.array(
            [None if pd.isna(t) else t.strftime("%Y-%m-%d %H:%M:%S.%f") + suffix for t in stamps],
            dtype=object,
        )
        out[c] = text[inverse]
    return df if out is None else out


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{_check_ident(c)}"' for c in columns)


_ARROW_FROM_PG = {
    "double precision": pa.float64(),
    "real": pa.float64(),
    "bigint": pa.int64(),
    "integer": pa.int64(),
    "smallint": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(),
}


def _pg_select(column: str, pg_type: str) -> str:
    """Timestamps leave PostgreSQL as ISO-8601 in UTC, which Arrow parses exactly."""
    if pg_type == "timestamp with time zone":
        return f'to_char("{column}" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') AS "{column}"'
    if pg_type == "timestamp without time zone":
        return f'to_char("{column}", \'YYYY-MM-DD"T"HH24:MI:SS.US\') AS "{column}"'
    return f'"{column}"'


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """The dtypes a Parquet round trip gives: datetime64[ns, UTC], float64, object strings."""
    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type):
            fields.append(pa.field(f.name, pa.timestamp("ns", tz=f.type.tz)))
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)).to_pandas()


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
