"""Per-account rolling trade activity, exposure and PnL, updated one event at a time.

Why event-time windows: the 1 h and 1 d trade counts/notionals are as of the event being
processed (a deque of the account's trades, trimmed by event time), so replaying the same events
gives the same values and nothing after the event is used. Positions are average-cost: a trade
that reduces or flips a position realizes PnL against the average cost; unrealized PnL and
exposures use the latest price seen for each symbol (trade prices and position marks, newest
event time wins). Concentration = largest absolute symbol exposure / gross exposure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class _Position:
    quantity: float = 0.0
    avg_cost: float = 0.0


@dataclass
class AccountState:
    """Everything one account's features need; O(trades in the last day) memory."""

    trades: deque[tuple[int, float]] = field(default_factory=deque)  # (event ms, notional)
    positions: dict[str, _Position] = field(default_factory=dict)
    realized_pnl: float = 0.0
    last_ms: int = 0

    def apply_trade(self, symbol: str, side: str, quantity: float, price: float) -> None:
        signed = quantity if side == "buy" else -quantity
        pos = self.positions.setdefault(symbol, _Position())
        if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            total = pos.quantity + signed
            pos.avg_cost = (pos.avg_cost * abs(pos.quantity) + price * abs(signed)) / abs(total)
            pos.quantity = total
            return
        closing = min(abs(signed), abs(pos.quantity))
        direction = 1.0 if pos.quantity > 0 else -1.0
        self.realized_pnl += closing * (price - pos.avg_cost) * direction
        remaining = pos.quantity + signed
        if remaining == 0:
            pos.quantity, pos.avg_cost = 0.0, 0.0
        elif (remaining > 0) != (pos.quantity > 0):  # flipped: the rest opens at this price
            pos.quantity, pos.avg_cost = remaining, price
        else:
            pos.quantity = remaining

    def features(self, now_ms: int, prices: Mapping[str, float]) -> dict[str, Any]:
        while self.trades and self.trades[0][0] <= now_ms - DAY_MS:
            self.trades.popleft()
        count_1h = 0
        notional_1h = 0.0
        for ts, notional in reversed(self.trades):
            if ts <= now_ms - HOUR_MS:
                break
            count_1h += 1
            notional_1h += notional
        net = gross = unrealized = biggest = 0.0
        open_positions = 0
        for symbol, pos in self.positions.items():
            if pos.quantity == 0:
                continue
            price = prices.get(symbol, pos.avg_cost)
            exposure = pos.quantity * price
            net += exposure
            gross += abs(exposure)
            biggest = max(biggest, abs(exposure))
            unrealized += pos.quantity * (price - pos.avg_cost)
            open_positions += 1
        return {
            "trade_count_1h": count_1h,
            "notional_1h": notional_1h,
            "trade_count_1d": len(self.trades),
            "notional_1d": float(sum(n for _, n in self.trades)),
            "net_exposure": net,
            "gross_exposure": gross,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": unrealized,
            "concentration": biggest / gross if gross else 0.0,
            "open_positions": open_positions,
        }


class AccountBook:
    """All accounts' states plus the latest price per symbol."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}
        self.prices: dict[str, tuple[int, float]] = {}
        self.seen_trades: set[str] = set()

    def _price(self, symbol: str, ms: int, price: float) -> None:
        prev = self.prices.get(symbol)
        if prev is None or ms >= prev[0]:
            self.prices[symbol] = (ms, price)

    def _marks(self) -> dict[str, float]:
        return {s: p for s, (_, p) in self.prices.items()}

    def trade(self, t: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a trade; None if it is a redelivery (same trade_id) or older than the account's last event."""
        if t["trade_id"] in self.seen_trades:
            return None
        state = self.accounts.setdefault(t["account_id"], AccountState())
        ms = t["event_time_ms"]
        if ms < state.last_ms:
            return None
        self.seen_trades.add(t["trade_id"])
        state.last_ms = ms
        self._price(t["symbol"], ms, t["price"])
        state.apply_trade(t["symbol"], t["side"], t["quantity"], t["price"])
        state.trades.append((ms, t["quantity"] * t["price"]))
        return state.features(ms, self._marks())

    def mark(self, p: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a position mark (latest real price); re-values that account's positions."""
        ms = p["event_time_ms"]
        self._price(p["symbol"], ms, p["mark_price"])
        state = self.accounts.get(p["account_id"])
        if state is None or ms < state.last_ms:
            return None
        state.last_ms = ms
        return state.features(ms, self._marks())

    def forget(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)
