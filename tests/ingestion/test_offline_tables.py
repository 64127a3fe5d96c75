"""finfeast.offline upsert semantics, the same on both back ends (Parquet and PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest

from finfeast.offline import open_tables

T0 = pd.Timestamp("2024-01-02 21:00", tz="UTC")


def frame(closes: list[float], days: list[int], stamp: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["AAA"] * len(days),
            "event_timestamp": [T0 + pd.Timedelta(days=d) for d in days],
            "close": closes,
            "note": [None if d % 2 else "x" for d in days],
            "flag": [d % 2 == 0 for d in days],
            "ingested_at": pd.Timestamp(stamp, tz="UTC"),
        }
    )


@pytest.fixture(params=["local", "prod"])
def tables(request, settings_factory):
    return open_tables(settings_factory(request.param, f"offline_{request.param}"))


def test_upsert_inserts_updates_and_keeps_unchanged_rows(tables) -> None:
    key, ignore = ["symbol", "event_timestamp"], ["ingested_at"]
    first = tables.upsert(
        "t_upsert", frame([1.0, 2.0, 3.0], [0, 1, 2], "2024-01-01"), key, ignore=ignore
    )
    assert (first.rows_inserted, first.rows_updated, first.rows_total) == (3, 0, 3)
    # day 0 unchanged, day 1 changed, day 3 new; all carry a new ingestion time
    second = tables.upsert(
        "t_upsert", frame([1.0, 2.5, 4.0], [0, 1, 3], "2024-02-01"), key, ignore=ignore
    )
    assert (second.rows_inserted, second.rows_updated, second.rows_total) == (1, 1, 4)
    got = tables.read("t_upsert").sort_values("event_timestamp").reset_index(drop=True)
    assert got["close"].tolist() == [1.0, 2.5, 3.0, 4.0]
    stamps = got["ingested_at"].dt.strftime("%Y-%m").tolist()
    assert stamps == ["2024-01", "2024-02", "2024-01", "2024-02"]  # unchanged row kept its version
    assert got["note"].tolist() == ["x", None, "x", None]
    assert got["flag"].tolist() == [True, False, True, False]
    assert str(got["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    third = tables.upsert("t_upsert", frame([1.0, 2.5], [0, 1], "2024-03-01"), key, ignore=ignore)
    assert (third.rows_inserted, third.rows_updated) == (0, 0)


def test_read_selected_columns_and_missing_table(tables) -> None:
    from finfeast.errors import FinfeastError

    tables.upsert("t_cols", frame([1.0], [0], "2024-01-01"), ["symbol", "event_timestamp"])
    got = tables.read("t_cols", columns=["symbol", "close"])
    assert list(got.columns) == ["symbol", "close"] and got.iloc[0].tolist() == ["AAA", 1.0]
    with pytest.raises(FinfeastError, match="does not exist"):
        tables.read("t_never_written")


def test_strings_that_look_like_nulls_survive(tables) -> None:
    """'NA' is a NASDAQ ticker and '' is not NULL: both must round-trip unchanged."""
    df = pd.DataFrame({"symbol": ["NA", "", None, "N/A"], "v": [1.0, 2.0, 3.0, float("nan")]})
    df["k"] = range(4)
    tables.upsert("t_nulls", df, ["k"])
    got = tables.read("t_nulls").sort_values("k").reset_index(drop=True)
    assert got["symbol"].tolist() == ["NA", "", None, "N/A"]
    assert got["v"].isna().tolist() == [False, False, False, True]


def test_processes_creating_one_new_table_at_once_all_succeed(settings_factory) -> None:
    """Several writers appending to a table that does not exist yet (stream processes starting
    together on a new database): PostgreSQL's own `CREATE TABLE IF NOT EXISTS` races without the
    DDL lock (UniqueViolation on pg_type); every writer must succeed and every row land."""
    import threading

    tables = open_tables(settings_factory("prod", "offline_ddl_race"))
    errors: list[BaseException] = []
    rounds, writers = 5, 4

    def append(table: str, k: int) -> None:
        try:
            tables.upsert(
                table, frame([float(k)], [k], "2024-01-01"), ["symbol", "event_timestamp"]
            )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    for r in range(rounds):
        threads = [threading.Thread(target=append, args=(f"t_race_{r}", k)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for r in range(rounds):
        assert sorted(tables.read(f"t_race_{r}")["close"]) == [float(k) for k in range(writers)]
