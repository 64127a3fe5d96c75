"""Prod profile: the same ingest into PostgreSQL (COPY) gives the same tables as local Parquet,
the simulated trading database lives in PostgreSQL, and a second run changes nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from finfeast.offline import open_tables
from ingestion import run_ingest
from ingestion.tables import TABLES

pytestmark = [pytest.mark.prod, pytest.mark.slow]


@pytest.fixture(scope="module")
def full_prod(settings_factory):
    settings = settings_factory("prod", "ing_prod")
    patch = pytest.MonkeyPatch()
    patch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    patch.delenv("FINFEAST_TRADING_DB_URL", raising=False)
    try:
        return settings, run_ingest(settings, progress=False)
    finally:
        patch.undo()


def _canonical(df: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    df = df.drop(columns=["ingested_at"]).sort_values(list(key)).reset_index(drop=True)
    return df[sorted(df.columns)]


def test_prod_tables_equal_local_tables(full_prod, full_local) -> None:
    prod_settings, prod = full_prod
    local_settings, local = full_local
    assert prod.status == "ok", prod.to_rows()
    assert [s.rows_loaded for s in prod.sources] == [s.rows_loaded for s in local.sources]
    assert [s.rules for s in prod.sources] == [s.rules for s in local.sources]
    pg, pq = open_tables(prod_settings), open_tables(local_settings)
    for name, spec in TABLES.items():
        assert pg.exists(name) == pq.exists(name), name
        if pq.exists(name):
            pd.testing.assert_frame_equal(
                _canonical(pg.read(name), spec.key), _canonical(pq.read(name), spec.key), obj=name
            )


def test_trading_database_is_in_postgresql(full_prod) -> None:
    import psycopg

    settings, _ = full_prod
    with psycopg.connect(settings.pg_dsn) as conn:
        n = conn.execute("SELECT count(*) FROM sim_transactions").fetchone()[0]
        note = conn.execute("SELECT note FROM sim_meta").fetchone()[0]
    assert n >= 50_000 and "SIMULATED" in note


def test_second_prod_run_changes_nothing(full_prod) -> None:
    settings, first = full_prod
    again = run_ingest(settings, sources=["stocks_5yr", "fx", "trading"], progress=False)
    assert again.status == "ok"
    assert all(w["inserted"] == 0 and w["updated"] == 0 for w in again.writes.values()), (
        again.writes
    )
