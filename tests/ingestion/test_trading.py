"""trading: the SIMULATED database is deterministic, priced at real closes, and ingested with
its rules (quantity != 0, account exists) like any source system."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pandas as pd

from finfeast.offline import open_tables
from ingestion import trading_sim


def test_sizes_and_labels(full_local) -> None:
    settings, summary = full_local
    src = summary.source("trading")
    assert src.status == "ok", src.error
    tables = open_tables(settings)
    acc, txn, pos = (tables.read(t) for t in ("accounts", "transactions", "positions"))
    assert len(acc) >= 1_000 and len(txn) >= 50_000
    assert acc["simulated"].all() and txn["simulated"].all() and pos["simulated"].all()
    assert set(txn["source"]) == {"trading:simulated"}
    assert src.rows_read == len(acc) + len(txn) + len(pos)
    assert src.rows_loaded + src.rows_quarantined == src.rows_read


def test_fills_are_real_closing_prices(full_local, data_dir: Path) -> None:
    settings, _ = full_local
    txn = open_tables(settings).read("transactions")
    with gzip.open(data_dir / "daily/all_stocks_5yr.csv.gz", "rt") as fh:
        real = pd.read_csv(fh, usecols=["date", "close", "Name"])
    import exchange_calendars as xcals

    # each fill at its session's actual close (13:00 New York on early-close days)
    closes = xcals.get_calendar("XNYS", start="2013-01-01").schedule["close"]
    closes.index = closes.index.strftime("%Y-%m-%d")
    real["event_timestamp"] = closes.reindex(real["date"]).to_numpy()
    joined = txn.merge(
        real.rename(columns={"Name": "symbol"}), on=["symbol", "event_timestamp"], how="left"
    )
    assert joined["close"].notna().all()
    assert (joined["price"] == joined["close"]).all()


def test_positions_equal_the_sum_of_transactions(full_local) -> None:
    settings, _ = full_local
    tables = open_tables(settings)
    txn = tables.read("transactions").sort_values(["event_timestamp", "txn_id"])
    held = txn.groupby(["account_id", "symbol"])["quantity"].sum()
    running_min = txn.groupby(["account_id", "symbol"])["quantity"].cumsum().min()
    assert running_min >= 0  # sells never exceed the position
    pos = tables.read("positions").set_index(["account_id", "symbol"])["quantity"]
    assert pos.to_dict() == held[held > 0].to_dict()


def test_simulation_is_deterministic(data_dir: Path) -> None:
    with gzip.open(data_dir / "daily/all_stocks_5yr.csv.gz", "rt") as fh:
        closes = pd.read_csv(fh, usecols=["date", "close", "Name"]).rename(
            columns={"Name": "symbol"}
        )
    closes = closes.dropna()
    a, b = trading_sim.simulate(closes), trading_sim.simulate(closes)
    for name in trading_sim.TABLES:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_bad_rows_in_the_source_database_are_quarantined(
    full_local, settings_factory, monkeypatch
) -> None:
    from ingestion import run_ingest

    settings, _ = full_local
    db = settings.profile_dir / "trading_sim.sqlite"
    broken = Path(settings_factory("local", "trading_bad").profile_dir) / "broken.sqlite"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(db.read_bytes())
    with sqlite3.connect(broken) as conn:
        conn.execute(
            "INSERT INTO sim_transactions VALUES ('T-BAD-1', 'SIM-000001', 'AAPL', '2017-01-03', 0.0, 116.15)"
        )
        conn.execute(
            "INSERT INTO sim_transactions VALUES ('T-BAD-2', 'NOBODY', 'AAPL', '2017-01-03', 5.0, 116.15)"
        )
    monkeypatch.setenv("FINFEAST_TRADING_DB_URL", f"sqlite:///{broken}")
    target = settings_factory("local", "trading_bad_run")
    summary = run_ingest(target, sources=["trading"], progress=False)
    src = summary.source("trading")
    assert src.rules == {"quantity_zero": 1, "unknown_account": 1}
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    q = open_tables(target).read("quarantine")
    assert set(q["table"]) == {"transactions"}
    assert (
        q["row"].str.contains("T-BAD-1").sum() == 1 and q["row"].str.contains("T-BAD-2").sum() == 1
    )
