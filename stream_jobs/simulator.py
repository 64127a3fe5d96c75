"""Simulated account activity (labelled simulated) at replayed real prices.

Why simulated: there is no real account data. Trades and position marks are drawn from a seeded
random generator, so the same bars always give the same activity, and every price is the close
of a real minute bar at that minute. Every message carries `"simulated": true`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from stream_jobs.replay import Message, _epoch_ms
from stream_jobs.schemas import encode

DEFAULT_ACCOUNTS = 20
TRADE_PROBABILITY = 0.3
MARK_EVERY = 30  # bars of a symbol between position marks for every holder


def account_ids(n: int = DEFAULT_ACCOUNTS) -> list[str]:
    return [f"SIM{i:04d}" for i in range(1, n + 1)]


def account_messages(
    bars: pd.DataFrame,
    accounts: int = DEFAULT_ACCOUNTS,
    seed: int = 7,
    shift_ms: int = 0,
) -> Iterator[tuple[str, Message]]:
    """(topic, message) pairs for `trades` and `positions`, in event-time order, keyed by account."""
    rng = np.random.default_rng(seed)
    ids = account_ids(accounts)
    holdings: dict[tuple[str, str], float] = {}
    bar_counts: dict[str, int] = {}
    ms_all = (_epoch_ms(bars["event_timestamp"]) + shift_ms).to_numpy()
    draws = rng.random(len(bars))
    picks = rng.integers(0, accounts, len(bars))
    sizes = rng.integers(1, 20, len(bars)) * 10
    sells = rng.random(len(bars)) < 0.45
    for i, (symbol, close) in enumerate(zip(bars["symbol"], bars["close"], strict=True)):
        ms = int(ms_all[i])
        price = float(close)
        count = bar_counts[symbol] = bar_counts.get(symbol, 0) + 1
        if draws[i] < TRADE_PROBABILITY:
            acct = ids[int(picks[i])]
            qty = float(sizes[i])
            side = "sell" if sells[i] else "buy"
            trade = {
                "account_id": acct,
                "trade_id": f"{acct}-{ms}-{symbol}-{i}",
                "symbol": symbol,
                "side": side,
                "quantity": qty,
                "price": price,
                "event_time_ms": ms,
                "simulated": True,
            }
            yield "trades", (acct.encode(), encode("trade", trade), ms)
            key = (acct, symbol)
            holdings[key] = holdings.get(key, 0.0) + (qty if side == "buy" else -qty)
        if count % MARK_EVERY == 0:
            for (acct, sym), qty in holdings.items():
                if sym == symbol and qty != 0:
                    mark = {
                        "account_id": acct,
                        "symbol": sym,
                        "quantity": qty,
                        "mark_price": price,
                        "event_time_ms": ms,
                        "simulated": True,
                    }
                    yield "positions", (acct.encode(), encode("position", mark), ms)
