"""The offline log's write paths, against the real PostgreSQL and the market job's real rows.

Rows: the market processor (catalog, no River) over the first 3,000 real minute bars of the replay
week, plus two columns derived from them (a nullable boolean and a nullable integer) so every type
the binary encoder writes, NULLs included, is exercised.

- Binary COPY (`stream_jobs.pg_copy`) stores what the CSV COPY of `finfeast.offline` stores: the
  oracle is PostgreSQL's own CSV parser on Arrow's CSV text, both tables read back the same way.
- A log table whose column type the encoder does not write (an older table) falls back to CSV.
- The log writer thread appends queued batches together, reports them in order, and when the log
  refuses one entity's rows it reports that entity alone and writes every other row.
- A local part written with the cheaper Parquet options reads back equal through DuckDB.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from finfeast import retry
from finfeast.offline import PostgresTables
from stream_jobs import pg_copy
from stream_jobs.log_writer import LogPart, LogWriter
from stream_jobs.offline_log import OfflineLog
from stream_jobs.views import market_view

pytestmark = [pytest.mark.prod]


@pytest.fixture(scope="module")
def log_prod(settings_factory):  # noqa: ANN001, ANN201
    return settings_factory("prod", "offline_log")


@pytest.fixture(scope="module")
def real_output(log_prod) -> list:  # noqa: ANN001
    """The market processor's `ViewRows` of three 1,000-row batches of real bars."""
    from stream_jobs.consumer import Event
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.replay import bar_messages, load_intraday_bars
    from stream_jobs.schemas import TOPIC_BARS, decode

    msgs = list(bar_messages(load_intraday_bars(log_prod.data_dir)))[:3000]
    proc = MarketProcessor(score_anomalies=False)
    view = market_view()
    out = []
    for i in range(0, len(msgs), 1000):
        events = [
            Event(TOPIC_BARS, 0, i + j, decode(TOPIC_BARS, m[1]), 0)
            for j, m in enumerate(msgs[i : i + 1000])
        ]
        out.append(proc.process(events)[view.name])
    return out


@pytest.fixture(scope="module")
def real_rows(real_output) -> list[pd.DataFrame]:  # noqa: ANN001
    """Their log frames (+ derived columns of every other type the encoder writes)."""
    frames = []
    for rows in real_output:
        df = rows.frame()
        ret = df["ret_1"]
        df["ret_1_up"] = pd.array(np.where(ret.isna(), None, ret > 0), dtype="boolean")
        df["ret_1_sign"] = pd.array(np.where(ret.isna(), None, np.sign(ret)), dtype="Int64")
        frames.append(df)
    return frames


def _sorted(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return df[columns].sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def _values(df: pd.DataFrame) -> pd.DataFrame:
    """Values as Python objects, every kind of null as None (dtypes differ by reader)."""
    return df.astype(object).where(df.notna(), None)


def test_binary_copy_stores_what_the_csv_copy_stores(log_prod, real_rows) -> None:  # noqa: ANN001
    df = pd.concat(real_rows, ignore_index=True)
    assert df.isna().to_numpy().sum() > 0  # NULLs of every kind are part of the check
    assert df["ret_1_up"].isna().any() and df["ret_1_sign"].isna().any()
    tables = PostgresTables(log_prod.pg_dsn)
    with tables._connect() as conn:  # noqa: SLF001 - the CSV path, as finfeast.offline runs it
        tables._create(conn, "via_csv", df, None)  # noqa: SLF001
        tables._copy(conn, "via_csv", df)  # noqa: SLF001
    log = OfflineLog(log_prod)
    payload = pg_copy.encode(df, "symbol")
    assert payload is not None and set(payload.columns) == set(df.columns)  # binary, every column
    log.append_frame("via_binary", market_view(), df)
    log.close()
    with tables._connect() as conn:  # noqa: SLF001
        types_csv = tables._columns(conn, "via_csv")  # noqa: SLF001
        types_bin = tables._columns(conn, "via_binary")  # noqa: SLF001
    assert types_bin == types_csv  # the schema Feast's PostgreSQL offline store reads
    nulls = ", ".join(f'count(*) FILTER (WHERE "{c}" IS NULL)' for c in df.columns)
    with tables._connect() as conn:  # noqa: SLF001 - NULL, not NaN, in SQL's eyes too
        null_csv = conn.execute(f'SELECT {nulls} FROM "via_csv"').fetchone()
        null_bin = conn.execute(f'SELECT {nulls} FROM "via_binary"').fetchone()
    assert null_bin == null_csv and sum(null_csv) > 0
    assert pg_copy.matches(payload.types, types_bin)
    columns = list(df.columns)
    want = _sorted(tables.read("via_csv"), columns)
    got = _sorted(tables.read("via_binary"), columns)
    assert len(got) == len(df)
    pd.testing.assert_frame_equal(got, want)


def test_a_column_type_the_encoder_does_not_write_falls_back_to_csv(log_prod, real_rows) -> None:  # noqa: ANN001
    df = real_rows[0]
    tables = PostgresTables(log_prod.pg_dsn)
    with tables._connect() as conn:  # noqa: SLF001 - an older table: last_close stored as real
        tables._create(conn, "older_log", df, None)  # noqa: SLF001
        conn.execute('ALTER TABLE "older_log" ALTER COLUMN "last_close" TYPE real')
    log = OfflineLog(log_prod)
    log.append_frame("older_log", market_view(), df)
    log.close()
    got = _sorted(tables.read("older_log"), list(df.columns))
    want = _sorted(df, list(df.columns))
    np.testing.assert_allclose(got["last_close"], want["last_close"], rtol=1e-6)
    pd.testing.assert_series_equal(got["ret_5"], want["ret_5"].astype("float64"), check_names=False)


def test_log_writer_coalesces_in_order_and_isolates_a_refused_entity(log_prod, real_rows) -> None:  # noqa: ANN001
    view = market_view()
    log = OfflineLog(log_prod)
    entered, release = threading.Event(), threading.Event()

    def held() -> pd.DataFrame:  # the writer waits here while three more batches queue up
        entered.set()
        assert release.wait(30)
        return real_rows[0]

    refused = real_rows[2].copy()
    bad_symbol = "BA\x00D"  # PostgreSQL text cannot hold a NUL: the log refuses these rows
    refused.loc[refused["symbol"] == refused["symbol"].iloc[0], "symbol"] = bad_symbol

    def call(what: str, fn, *args):  # noqa: ANN001, ANN202
        return retry.call(fn, *args, what=what)

    writer = LogWriter(log.append_frame, call, max_pending=8)
    seqs = [writer.submit([LogPart("writer_log", view, held)])]
    assert entered.wait(30)
    for frame in (real_rows[1], refused):
        seqs.append(writer.submit([LogPart("writer_log", view, lambda f=frame: f)]))
    seqs.append(writer.submit([]))  # a batch without log rows still waits its turn
    release.set()
    results = writer.drain()
    writer.close()
    log.close()
    assert [r.seq for r in results] == seqs == [1, 2, 3, 4]
    assert writer.writes == 2  # the held batch, then the three queued ones in one append
    assert results[0].bad == {}
    for r in results[1:]:
        assert set(r.bad) == {bad_symbol} and "CharacterNotInRepertoire" in r.bad[bad_symbol]
    stored = OfflineLog(log_prod).read("writer_log", "symbol")
    expected = pd.concat([real_rows[0], real_rows[1], refused], ignore_index=True)
    expected = expected[expected["symbol"] != bad_symbol]
    assert len(stored) == len(expected)
    columns = list(real_rows[0].columns)
    got = _values(_sorted(stored, columns).drop(columns="created_timestamp"))
    want = _values(_sorted(expected, columns).drop(columns="created_timestamp"))
    pd.testing.assert_frame_equal(got, want)


def test_local_parts_read_back_equal_through_duckdb(tmp_path, real_rows) -> None:  # noqa: ANN001
    import duckdb

    from finfeast.config import load_settings

    settings = load_settings("local", workdir=tmp_path, project="oflog_local")
    log = OfflineLog(settings)
    for frame in real_rows:
        log.append_frame("local_log", market_view(), frame)
    assert len(log.parts("local_log")) == len(real_rows)
    want = _sorted(pd.concat(real_rows, ignore_index=True), list(real_rows[0].columns))
    pattern = str(log.table_dir("local_log") / "**" / "*.parquet")
    got = duckdb.sql(f"SELECT * FROM read_parquet('{pattern}')").df()
    got["event_timestamp"] = pd.to_datetime(got["event_timestamp"], utc=True)
    got["created_timestamp"] = pd.to_datetime(got["created_timestamp"], utc=True)
    got = _sorted(got, list(want.columns))
    assert len(got) == len(want)
    for c in want.columns:
        if c in ("event_timestamp", "created_timestamp"):
            assert (got[c].astype("int64") // 1000 == want[c].astype("int64") // 1000).all(), c
        else:
            pd.testing.assert_frame_equal(_values(got[[c]]), _values(want[[c]]))
    read = log.read("local_log", "symbol")
    assert len(read) == len(want)


def test_processor_frames_go_binary_directly_and_store_the_same(log_prod, real_output) -> None:  # noqa: ANN001
    """`OfflineLog.append_sources` (the writer's fast path: the processor's frames, no pandas log
    frame) stores exactly what `append_frame` of the same batches stores."""
    view = market_view()
    log = OfflineLog(log_prod)
    log.append_frame("via_frames", view, pd.concat([r.frame() for r in real_output]))
    log.append_frame("via_sources", view, real_output[0].frame().head(1))  # table known here
    assert all(r.source is not None for r in real_output)
    assert log.append_sources("via_sources", view, [r.source for r in real_output]) is not None
    log.close()
    tables = PostgresTables(log_prod.pg_dsn)
    with tables._connect() as conn:  # noqa: SLF001 - the one row written to create the table
        conn.execute(
            'DELETE FROM "via_sources" WHERE created_timestamp = '
            '(SELECT min(created_timestamp) FROM "via_sources")'
        )
    want = tables.read("via_frames")
    got = tables.read("via_sources")
    columns = [c for c in want.columns if c != "created_timestamp"]
    pd.testing.assert_frame_equal(_sorted(got, columns), _sorted(want, columns))
    nulls = ", ".join(f'count(*) FILTER (WHERE "{c}" IS NULL)' for c in columns)
    with tables._connect() as conn:  # noqa: SLF001
        a = conn.execute(f'SELECT {nulls} FROM "via_frames"').fetchone()
        b = conn.execute(f'SELECT {nulls} FROM "via_sources"').fetchone()
    assert a == b and sum(a) > 0
    assert log.append_sources("not_known_yet", view, [real_output[0].source]) is None


def test_local_parts_from_processor_arrays_equal_parts_from_frames(
    settings_factory,
    real_output,  # noqa: ANN001
) -> None:
    """Local profile: `append_sources` writes a Parquet part straight from the processor's
    arrays (an Arrow table, no pandas frame). The oracle is pyarrow's own `from_pandas` of the
    log frame (the frame path): same schema (pandas metadata included), same values, NaN read
    back as null, whatever reads the parts (pyarrow, DuckDB)."""
    import duckdb
    import pyarrow.parquet as pq

    local = settings_factory("local", "offline_log_arrays")
    view = market_view()
    log = OfflineLog(local)
    log.append_frame("by_frames", view, pd.concat([r.frame() for r in real_output]))
    assert log.append_sources("by_arrays", view, [r.source for r in real_output]) is not None
    a, b = log.parts("by_frames"), log.parts("by_arrays")
    assert len(a) == len(b) == 1
    schema_a, schema_b = pq.read_schema(a[0]), pq.read_schema(b[0])
    assert schema_a.equals(schema_b, check_metadata=False)
    assert schema_a.pandas_metadata["columns"] == schema_b.pandas_metadata["columns"]
    key = ["symbol", "event_timestamp"]
    want = pq.read_table(a[0]).to_pandas().drop(columns="created_timestamp")
    got = pq.read_table(b[0]).to_pandas().drop(columns="created_timestamp")
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    )
    nulls = [f'count(*) FILTER (WHERE "{c}" IS NULL)' for c in ("ret_1", "rv_20")]
    counts = [
        duckdb.sql(f"SELECT {', '.join(nulls)} FROM read_parquet('{p}')").fetchall()[0]
        for p in (a[0], b[0])
    ]
    assert counts[0] == counts[1] and sum(counts[0]) > 0
    # blocks the direct path must not take: left to the frame path (None), nothing written
    from stream_jobs.view_rows import FeatureBlock
    from stream_jobs.views import tick_view

    twice = FeatureBlock.concat([real_output[0].source, real_output[0].source])
    assert log.append_sources("by_arrays", view, [twice]) is None
    assert log.append_sources("by_arrays", tick_view(), [real_output[0].source]) is None
    assert len(log.parts("by_arrays")) == 1
