"""The SIMULATED trading database: accounts, transactions and positions at real closing prices.

Why simulated: no real brokerage data can be shared. Everything here is labelled simulated
(`simulated` column = true, table names `sim_*`, docs). Only the behaviour is invented: every
fill price is a real closing price from `daily/all_stocks_5yr.csv.gz`.

Deterministic: numpy `default_rng(SEED)` with SEED = 20240601 and fixed sizes, so every machine
generates the same database. 1,200 accounts trade 60 symbols (the first 60 tickers with a full
1,259-day history, alphabetically); 60,000 market-on-close orders are filled at that day's close
(event time = the 16:00 New York close). Sells never exceed the position held, so positions are
never negative. Positions = holdings after the last trade, with average cost.

Stored through SQLAlchemy in the "source system": SQLite file `<profile dir>/trading_sim.sqlite`
(local) or the profile's PostgreSQL database (prod), overridable with FINFEAST_TRADING_DB_URL.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from loguru import logger

from finfeast.config import Settings
from finfeast.errors import ServiceUnavailable

SEED = 20240601
N_ACCOUNTS = 1_200
N_TRANSACTIONS = 60_000
N_SYMBOLS = 60
VERSION = "1"
TABLES = ("sim_accounts", "sim_transactions", "sim_positions")


def database_url(settings: Settings) -> str:
    override = os.environ.get("FINFEAST_TRADING_DB_URL")
    if override:
        return override
    if settings.profile == "prod":
        return settings.pg_sqlalchemy_url
    return f"sqlite:///{settings.profile_dir / 'trading_sim.sqlite'}"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def engine_for(url: str):  # noqa: ANN201 - sqlalchemy Engine
    """A SQLAlchemy engine; connection failures become a clear ServiceUnavailable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    kwargs = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {}
    engine = create_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ServiceUnavailable(
            f"trading database unreachable ({_redacted(url)}): {first}"
        ) from exc
    return engine


def simulate(closes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """accounts / transactions / positions from real closes (columns symbol, date, close)."""
    rng = np.random.default_rng(SEED)
    counts = closes.groupby("symbol")["close"].count()
    full = sorted(counts[counts == counts.max()].index)[:N_SYMBOLS]
    px = closes[closes["symbol"].isin(full)].pivot(index="date", columns="symbol", values="close")
    px = px.sort_index()
    dates = px.index.to_numpy()
    n_days = len(dates)

    opened_idx = rng.integers(0, n_days // 4, N_ACCOUNTS)
    accounts = pd.DataFrame(
        {
            "account_id": [f"SIM-{i:06d}" for i in range(1, N_ACCOUNTS + 1)],
            "opened_date": dates[opened_idx],
            "risk_profile": rng.choice(["conservative", "balanced", "aggressive"], N_ACCOUNTS),
            "base_currency": "USD",
        }
    )
    acct = rng.integers(0, N_ACCOUNTS, N_TRANSACTIONS)
    sym = rng.integers(0, len(full), N_TRANSACTIONS)
    day = opened_idx[acct] + (rng.random(N_TRANSACTIONS) * (n_days - opened_idx[acct])).astype(int)
    size = rng.integers(1, 200, N_TRANSACTIONS)
    sell_draw = rng.random(N_TRANSACTIONS)
    frac = rng.random(N_TRANSACTIONS)
    order = np.lexsort((np.arange(N_TRANSACTIONS), day, sym, acct))
    qty = np.zeros(N_TRANSACTIONS)
    pos, prev = 0.0, (-1, -1)
    for i in order:  # sells never exceed the position held
        group = (acct[i], sym[i])
        if group != prev:
            pos, prev = 0.0, group
        if pos > 0 and sell_draw[i] < 0.4:
            q = -max(1.0, np.floor(pos * frac[i]))
        else:
            q = float(size[i])
        qty[i], pos = q, pos + q
    prices = px.to_numpy()[day, sym]
    symbols = np.array(full, dtype=object)
    txns = pd.DataFrame(
        {
            "account_id": accounts["account_id"].to_numpy()[acct],
            "symbol": symbols[sym],
            "trade_date": dates[day],
            "quantity": qty,
            "price": prices,
            "_seq": np.arange(N_TRANSACTIONS),
        }
    ).sort_values(["trade_date", "_seq"], kind="stable")
    txns.insert(0, "txn_id", [f"T-{i:08d}" for i in range(1, N_TRANSACTIONS + 1)])
    txns = txns.drop(columns="_seq").reset_index(drop=True)
    return {"sim_accounts": accounts, "sim_transactions": txns, "sim_positions": _positions(txns)}


def _positions(txns: pd.DataFrame) -> pd.DataFrame:
    """Holdings after the last trade, with average cost (sells keep the average cost)."""
    rows = []
    for (account, symbol), g in txns.groupby(["account_id", "symbol"], sort=True):
        pos = cost = 0.0
        for q, p in zip(g["quantity"].to_numpy(), g["price"].to_numpy(), strict=True):
            if q > 0:
                cost, pos = (cost * pos + q * p) / (pos + q), pos + q
            else:
                pos += q
        if pos > 0:
            rows.append((account, symbol, pos, cost, g["trade_date"].iloc[-1]))
    return pd.DataFrame(
        rows, columns=["account_id", "symbol", "quantity", "avg_cost", "as_of_date"]
    )


def _is_current(engine, closes_source: str) -> bool:  # noqa: ANN001
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    if not inspect(engine).has_table("sim_meta"):
        return False
    query = "SELECT seed, version, n_transactions, closes_source FROM sim_meta"
    try:
        with engine.connect() as conn:
            row = conn.execute(text(query)).fetchone()
    except SQLAlchemyError:  # a database made before the closes were recorded: make it again
        return False
    return row is not None and tuple(row) == (SEED, VERSION, N_TRANSACTIONS, closes_source)


def ensure_database(url: str, closes_loader, closes_source: str = "stocks_5yr") -> bool:  # noqa: ANN001
    """Create the simulated tables unless the same seed/version on the same real closes is
    already there; True if made."""
    engine = engine_for(url)
    try:
        if _is_current(engine, closes_source):
            return False
        logger.info("trading: generating the SIMULATED trading database (seed {})", SEED)
        tables = simulate(closes_loader())
        meta = pd.DataFrame(
            {"seed": [SEED], "version": [VERSION], "n_transactions": [N_TRANSACTIONS],
             "closes_source": [closes_source],
             "note": ["SIMULATED accounts and trades at real closing prices"]}
        )  # fmt: skip
        with engine.begin() as conn:
            for name, df in {**tables, "sim_meta": meta}.items():
                df.to_sql(name, conn, if_exists="replace", index=False, chunksize=10_000)
        return True
    finally:
        engine.dispose()
