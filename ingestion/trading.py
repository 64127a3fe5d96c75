"""Source `trading`: the SIMULATED trading database -> `accounts`, `transactions`, `positions`.

The database is generated deterministically (see `trading_sim`, seed 20240601) if it is not there
yet, then read through SQLAlchemy like any source system. Rules: required fields; transaction
and position quantity != 0 (`quantity_zero`); price > 0; the account must exist
(`unknown_account`, checked against the accounts read in the same run). Every row is labelled
simulated.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ingestion import files, trading_sim
from ingestion.batch import Batch
from ingestion.coerce import to_float, to_str
from ingestion.context import SourceContext
from ingestion.rules import equals, in_set, positive, required
from ingestion.stocks_5yr import RELATIVE_PATH
from ingestion.timestamps import session_close_utc

SOURCE = "trading:simulated"


def closes_source(ctx: SourceContext) -> str:
    """Which real closes the simulation trades at: all_stocks_5yr with a data directory, the
    packaged bokeh-sampledata daily closes (AAPL, GOOG, IBM, MSFT, FB 2000-2013) without one."""
    return "stocks_5yr" if ctx.has_data_dir else "bokeh-sampledata"


def _packaged_closes() -> pd.DataFrame:
    from importlib.resources import files as package_files

    path = package_files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    df = pd.read_csv(path, usecols=["Ticker", "Date", "Close"])
    df = df.rename(columns={"Ticker": "symbol", "Date": "date", "Close": "close"}).dropna()
    df["date"] = pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")
    return df[df["close"] > 0]


def _closes(ctx: SourceContext):  # noqa: ANN202 - loader for the simulator
    def load() -> pd.DataFrame:
        if not ctx.has_data_dir:
            return _packaged_closes()
        path = files.resolve(ctx.data_file(RELATIVE_PATH), ctx.cache_dir / "files")
        types = {"date": pa.string(), "Name": pa.string(), "close": pa.float64()}
        read = files.read_table(path, types, required=("date", "close", "Name"))
        df = read.table.select(["Name", "date", "close"]).to_pandas()
        df = df.rename(columns={"Name": "symbol"}).dropna()
        return df[df["close"] > 0]

    return load


def _read(engine, table: str, order: str) -> pd.DataFrame:  # noqa: ANN001
    from sqlalchemy import text

    with engine.connect() as conn:
        return pd.read_sql(text(f"SELECT * FROM {table} ORDER BY {order}"), conn)


def extract(ctx: SourceContext) -> list[Batch]:
    url = trading_sim.database_url(ctx.settings)
    trading_sim.ensure_database(url, _closes(ctx), closes_source(ctx))
    engine = trading_sim.engine_for(url)
    try:
        acc_raw = _read(engine, "sim_accounts", "account_id")
        txn_raw = _read(engine, "sim_transactions", "trade_date, txn_id")
        pos_raw = _read(engine, "sim_positions", "account_id, symbol")
    finally:
        engine.dispose()

    acc = pd.DataFrame(
        {
            "account_id": to_str(acc_raw["account_id"]),
            "opened_at": session_close_utc(acc_raw["opened_date"].astype(str), fmt="%Y-%m-%d"),
            "risk_profile": to_str(acc_raw["risk_profile"]),
            "base_currency": to_str(acc_raw["base_currency"]),
            "simulated": True,
            "source": SOURCE,
        }
    )
    acc["event_timestamp"] = acc["opened_at"]
    acc_rules = [required(["account_id", "opened_at", "risk_profile", "base_currency"])]
    known = set(acc.loc[~acc_rules[0][1](acc), "account_id"])

    txn = pd.DataFrame(
        {
            "txn_id": to_str(txn_raw["txn_id"]),
            "account_id": to_str(txn_raw["account_id"]),
            "symbol": to_str(txn_raw["symbol"]),
            "quantity": to_float(txn_raw["quantity"]),
            "price": to_float(txn_raw["price"]),
            "event_timestamp": session_close_utc(txn_raw["trade_date"].astype(str), fmt="%Y-%m-%d"),
            "simulated": True,
            "source": SOURCE,
        }
    )
    txn_rules = [
        required(["txn_id", "account_id", "symbol", "quantity", "price", "event_timestamp"]),
        equals("quantity", 0.0, "quantity_zero"),
        positive(["price"]),
        in_set("account_id", known, "unknown_account"),
    ]
    pos = pd.DataFrame(
        {
            "account_id": to_str(pos_raw["account_id"]),
            "symbol": to_str(pos_raw["symbol"]),
            "quantity": to_float(pos_raw["quantity"]),
            "avg_cost": to_float(pos_raw["avg_cost"]),
            "event_timestamp": session_close_utc(pos_raw["as_of_date"].astype(str), fmt="%Y-%m-%d"),
            "simulated": True,
            "source": SOURCE,
        }
    )
    pos_rules = [
        required(["account_id", "symbol", "quantity", "avg_cost", "event_timestamp"]),
        equals("quantity", 0.0, "quantity_zero"),
        positive(["avg_cost"]),
        in_set("account_id", known, "unknown_account"),
    ]
    return [
        Batch("accounts", acc, acc_raw, acc_rules, check_time_order=False),
        Batch(
            "transactions", txn, txn_raw, txn_rules, entity=("account_id",), allow_equal_times=True
        ),
        Batch("positions", pos, pos_raw, pos_rules, check_time_order=False),
    ]
