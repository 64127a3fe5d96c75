"""Per-account rolling trade activity, exposure and PnL, updated one event at a time.

Why event-time windows: the 1 h and 1 d trade counts/notionals are as of the event being
processed (a deque of the account's trades, trimmed by event time), so replaying the same events
gives the same values and nothing after the event is used. Positions are average-cost: a trade
that reduces or flips a position realizes PnL against the average cost; unrealized PnL and
exposures use the account's own latest price per symbol: the prices of its own trades and position
marks, newest event time wins. Concentration = largest absolute symbol exposure / gross exposure.

Why the account's own prices: the marks used to be one price map per process, fed by every
account that process happened to own, so a process taking an account over (with a different set
of accounts) valued its positions at other prices than the dead one. An account's messages are
all keyed by the account, so they are the same whichever process reads them.

Lateness and dedup, per account (trades and marks come from two topics, so a mark read first must
not drop a trade): a trade older than the account's last trade changes nothing; a trade at the
account's last trade time is a redelivery if its `trade_id` was seen at that time. A row is
emitted only at or after the account's last emitted row time (no row ever carries a later event's
effect under an earlier time, so a redelivered event re-emits nothing or the very same row): an
in-order trade older than an already applied mark updates the positions silently, a mark older
than the newest price of its symbol changes nothing. So the dedup memory is the set of trade ids at the newest trade
millisecond of each account (cleared when the watermark moves): bounded by accounts x trades per
millisecond, and exact (a redelivered trade is either older than the watermark or at it).
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
    last_ms: int = 0  # newest event (trade or mark) applied: the time of the emitted row
    last_trade_ms: int = 0
    ids_at_last_trade: set[str] = field(default_factory=set)  # the bounded dedup memory
    marks: dict[str, tuple[int, float]] = field(default_factory=dict)  # symbol -> (ms, price)

    def price(self, symbol: str, ms: int, price: float) -> None:
        """Record a price of this account's own (trade or mark); newest event time wins."""
        prev = self.marks.get(symbol)
        if prev is None or ms >= prev[0]:
            self.marks[symbol] = (ms, price)

    def mark_prices(self) -> dict[str, float]:
        return {s: p for s, (_, p) in self.marks.items()}

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
        # Trades arrive in event-time order; a mark may be older than the newest trade, so trim
        # only what no later row can need and count only trades at or before `now_ms`.
        horizon = min(now_ms, self.last_trade_ms) - DAY_MS
        while self.trades and self.trades[0][0] <= horizon:
            self.trades.popleft()
        count_1h = count_1d = 0
        notional_1h = notional_1d = 0.0
        for ts, notional in reversed(self.trades):
            if ts > now_ms:
                continue
            if ts <= now_ms - DAY_MS:
                break
            count_1d += 1
            notional_1d += notional
            if ts > now_ms - HOUR_MS:
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
            "trade_count_1d": count_1d,
            "notional_1d": notional_1d,
            "net_exposure": net,
            "gross_exposure": gross,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": unrealized,
            "concentration": biggest / gross if gross else 0.0,
            "open_positions": open_positions,
        }


class AccountBook:
    """All accounts' states; every value of an account depends on that account's messages only."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}

    def trade(self, t: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a trade; None if it is a redelivery or older than the account's last trade."""
        state = self.accounts.setdefault(t["account_id"], AccountState())
        ms = t["event_time_ms"]
        if ms < state.last_trade_ms:
            return None
        if ms == state.last_trade_ms:
            if t["trade_id"] in state.ids_at_last_trade:
                return None
        else:
            state.ids_at_last_trade = set()
            state.last_trade_ms = ms
        state.ids_at_last_trade.add(t["trade_id"])
        state.price(t["symbol"], ms, t["price"])
        state.apply_trade(t["symbol"], t["side"], t["quantity"], t["price"])
        state.trades.append((ms, t["quantity"] * t["price"]))
        if ms < state.last_ms:  # a newer mark was applied first: folded in, no row
            return None
        state.last_ms = ms
        return state.features(ms, state.mark_prices())

    def mark(self, p: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a position mark (a real price); re-values that account's positions."""
        ms = p["event_time_ms"]
        state = self.accounts.get(p["account_id"])
        if state is None:
            return None
        state.price(p["symbol"], ms, p["mark_price"])
        if ms < state.last_ms:
            return None
        state.last_ms = ms
        return state.features(ms, state.mark_prices())

    def dedup_memory(self) -> int:
        """Trade ids held for redelivery detection (bounded: see the module docstring)."""
        return sum(len(s.ids_at_last_trade) for s in self.accounts.values())

    def forget(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)
