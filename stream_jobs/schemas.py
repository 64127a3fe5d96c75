"""Topic names, message schemas (JSON, versioned) and their validation.

Why one module: producers, both stream jobs, the DLQ and the docs must agree on one definition of
each message. Every message is a JSON object with a schema version `v`; the Kafka key is the
entity id (symbol for market messages, account_id for account messages) so one entity always
lands in one partition and is processed in order by one consumer of the group.

Schema version 1 (all timestamps are UTC epoch milliseconds, `event_time_ms`):

| topic | kind | fields |
|---|---|---|
| `market.bars` | `bar` | symbol, event_time_ms (bar start), open, high, low, close (> 0, low <= open,close <= high), volume (>= 0) |
| `market.bars` | `tick` | symbol, event_time_ms, price (> 0), size (>= 0) |
| `trades` | `trade` | account_id, trade_id, symbol, side (buy/sell), quantity (> 0), price (> 0), event_time_ms, simulated (true) |
| `positions` | `position` | account_id, symbol, quantity (signed), mark_price (> 0), event_time_ms, simulated (true) |

`decode(kind_family, payload)` returns a plain dict or raises `InvalidMessage` whose `reason` is a
short stable code (it becomes a DLQ header and a metric label). `check_key(topic, key, value)`
then rejects a message whose Kafka key is not its entity (`key_mismatch`): a bar for AIG keyed
`SPY` sits in SPY's partition, where AIG's state does not live, so it is never processed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

TOPIC_BARS = "market.bars"
TOPIC_TRADES = "trades"
TOPIC_POSITIONS = "positions"
TOPICS = (TOPIC_BARS, TOPIC_TRADES, TOPIC_POSITIONS)

MAX_PAYLOAD_BYTES = 16 * 1024
# An event stamped further ahead of the wall clock than this is a producer bug, not a real event.
MAX_FUTURE_MS = 24 * 3600 * 1000


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"


class InvalidMessage(ValueError):
    """A message that cannot be processed; `reason` is a stable code, `detail` says what failed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_NUMBER = (int, float)


def _number(msg: Mapping[str, Any], name: str) -> float:
    if name not in msg:
        raise InvalidMessage("missing_field", f"field {name!r} is missing")
    value = msg[name]
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise InvalidMessage(
            "wrong_type", f"field {name!r} must be a number, got {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise InvalidMessage("wrong_type", f"field {name!r} must be finite")
    return value


def _string(msg: Mapping[str, Any], name: str) -> str:
    if name not in msg:
        raise InvalidMessage("missing_field", f"field {name!r} is missing")
    value = msg[name]
    if not isinstance(value, str) or not value:
        raise InvalidMessage("wrong_type", f"field {name!r} must be a non-empty string")
    return value


def _event_time(msg: Mapping[str, Any], now_ms: int) -> int:
    if "event_time_ms" not in msg:
        raise InvalidMessage("missing_field", "field 'event_time_ms' is missing")
    value = msg["event_time_ms"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage("wrong_type", "field 'event_time_ms' must be an integer (epoch ms)")
    if value <= 0:
        raise InvalidMessage("bad_timestamp", f"event_time_ms {value} is not after the epoch")
    if value > now_ms + MAX_FUTURE_MS:
        raise InvalidMessage(
            "future_timestamp", f"event_time_ms {value} is more than 24 h after now ({now_ms})"
        )
    return value


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise InvalidMessage("non_positive_price", f"{name} must be > 0, got {value}")
    return value


def _parse(payload: bytes | None, max_bytes: int) -> dict[str, Any]:
    if payload is None:
        raise InvalidMessage("malformed_json", "empty message value")
    if len(payload) > max_bytes:
        raise InvalidMessage("oversized", f"{len(payload)} bytes > limit {max_bytes}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("malformed_json", str(exc)) from None
    if not isinstance(msg, dict):
        raise InvalidMessage("malformed_json", f"expected a JSON object, got {type(msg).__name__}")
    version = msg.get("v")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise InvalidMessage(
            "unknown_schema_version", f"schema version {version!r} is not supported"
        )
    return msg


def ms_to_datetime(ms: int) -> datetime:
    """UTC datetime of an epoch-millisecond timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_INF = math.inf


def _bar(msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A valid bar's canonical dict. Fast path first: plain lookups and type checks, taken only
    when every rule below holds (the message is valid), so its result is `_bar_checked`'s; any
    doubt goes to `_bar_checked`, which finds the exact reason. (Per-field helper calls were
    most of the job's decode cost.)"""
    g = msg.get
    symbol, ts = g("symbol"), g("event_time_ms")
    o, h, low, c, volume = g("open"), g("high"), g("low"), g("close"), g("volume")
    if (
        type(symbol) is str
        and symbol
        and type(ts) is int
        and 0 < ts <= now_ms + MAX_FUTURE_MS
        and (type(o) is float or type(o) is int)
        and (type(h) is float or type(h) is int)
        and (type(low) is float or type(low) is int)
        and (type(c) is float or type(c) is int)
        and (type(volume) is float or type(volume) is int)
        and 0 < low <= o <= h < _INF
        and low <= c <= h
        and 0 <= volume < _INF
    ):
        return {
            "kind": "bar",
            "symbol": symbol,
            "event_time_ms": ts,
            "open": float(o),
            "high": float(h),
            "low": float(low),
            "close": float(c),
            "volume": float(volume),
        }
    return _bar_checked(msg, now_ms)


def _bar_checked(msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
    symbol = _string(msg, "symbol")
    ts = _event_time(msg, now_ms)
    o, h, low, c = (_number(msg, k) for k in ("open", "high", "low", "close"))
    volume = _number(msg, "volume")
    for name, value in (("open", o), ("high", h), ("low", low), ("close", c)):
        _positive(name, value)
    if h < low:
        raise InvalidMessage("high_below_low", f"high {h} < low {low}")
    if not (low <= o <= h and low <= c <= h):
        raise InvalidMessage("price_outside_range", f"open {o} / close {c} outside [{low}, {h}]")
    if volume < 0:
        raise InvalidMessage("negative_volume", f"volume {volume} < 0")
    return {
        "kind": "bar",
        "symbol": symbol,
        "event_time_ms": ts,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": volume,
    }


def _tick(msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
    symbol = _string(msg, "symbol")
    ts = _event_time(msg, now_ms)
    price = _positive("price", _number(msg, "price"))
    size = _number(msg, "size")
    if size < 0:
        raise InvalidMessage("negative_volume", f"size {size} < 0")
    return {"kind": "tick", "symbol": symbol, "event_time_ms": ts, "price": price, "size": size}


def _trade(msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
    out = {
        "kind": "trade",
        "account_id": _string(msg, "account_id"),
        "trade_id": _string(msg, "trade_id"),
        "symbol": _string(msg, "symbol"),
        "event_time_ms": _event_time(msg, now_ms),
        "price": _positive("price", _number(msg, "price")),
        "quantity": _number(msg, "quantity"),
    }
    side = _string(msg, "side")
    if side not in ("buy", "sell"):
        raise InvalidMessage("bad_side", f"side must be buy or sell, got {side!r}")
    if out["quantity"] <= 0:
        raise InvalidMessage("non_positive_quantity", f"quantity {out['quantity']} <= 0")
    out["side"] = side
    return out


def _position(msg: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {
        "kind": "position",
        "account_id": _string(msg, "account_id"),
        "symbol": _string(msg, "symbol"),
        "event_time_ms": _event_time(msg, now_ms),
        "quantity": _number(msg, "quantity"),
        "mark_price": _positive("mark_price", _number(msg, "mark_price")),
    }


_DECODERS = {
    TOPIC_BARS: {"bar": _bar, "tick": _tick},
    TOPIC_TRADES: {"trade": _trade},
    TOPIC_POSITIONS: {"position": _position},
}


def decode(
    topic: str,
    payload: bytes | None,
    now_ms: int | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Validate one message of `topic` and return its canonical dict (raises `InvalidMessage`)."""
    msg = _parse(payload, max_bytes)
    kinds = _DECODERS.get(topic)
    if kinds is None:
        raise InvalidMessage("unknown_topic", f"no schema for topic {topic!r}")
    kind = msg.get("kind")
    decoder = kinds.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise InvalidMessage("unknown_kind", f"kind {kind!r} is not valid on {topic}")
    return decoder(msg, int(time.time() * 1000) if now_ms is None else now_ms)


_ENTITY_FIELD = {TOPIC_BARS: "symbol", TOPIC_TRADES: "account_id", TOPIC_POSITIONS: "account_id"}


def entity_of(topic: str, value: Mapping[str, Any]) -> str:
    """The entity id a decoded message belongs to (its Kafka key must be this, UTF-8)."""
    return str(value[_ENTITY_FIELD[topic]])


def check_key(topic: str, key: bytes | None, value: Mapping[str, Any]) -> None:
    """Raise `InvalidMessage("key_mismatch")` unless the message's key is its entity id."""
    entity = entity_of(topic, value)
    if key is None:
        raise InvalidMessage("key_mismatch", f"no key; the {_ENTITY_FIELD[topic]} is {entity!r}")
    if key != entity.encode():
        shown = key[:64].decode("utf-8", "replace")
        raise InvalidMessage(
            "key_mismatch", f"key {shown!r} is not the {_ENTITY_FIELD[topic]} {entity!r}"
        )


def encode(kind: str, fields: Mapping[str, Any]) -> bytes:
    """JSON bytes of a schema-version-1 message of `kind`."""
    return orjson.dumps({"v": SCHEMA_VERSION, "kind": kind, **fields})
