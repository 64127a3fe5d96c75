"""Message validation: every bad-message kind is rejected with its own reason; real bars pass."""

from __future__ import annotations

import time

import orjson
import pytest

from stream_jobs.replay import bar_messages, load_intraday_bars
from stream_jobs.schemas import (
    MAX_PAYLOAD_BYTES,
    TOPIC_BARS,
    TOPIC_TRADES,
    InvalidMessage,
    decode,
    encode,
)

GOOD_BAR = {
    "symbol": "SPY",
    "event_time_ms": 1381152600000,
    "open": 168.0,
    "high": 168.5,
    "low": 167.9,
    "close": 168.2,
    "volume": 1000.0,
}


def _bar(**changes: object) -> bytes:
    fields = {**GOOD_BAR, **changes}
    return encode("bar", {k: v for k, v in fields.items() if v is not ...})


BAD_BARS = {
    "malformed_json": b'{"v": 1, "kind": "bar", "symbol": "SPY"',
    "missing_field": _bar(close=...),
    "wrong_type": _bar(volume="1000"),
    "non_positive_price": _bar(low=0.0),
    "high_below_low": _bar(high=160.0, low=161.0, open=160.5, close=160.5),
    "unknown_schema_version": orjson.dumps({**GOOD_BAR, "v": 99, "kind": "bar"}),
    "future_timestamp": _bar(event_time_ms=int(time.time() * 1000) + 10 * 86_400_000),
    "oversized": _bar(symbol="X" * (MAX_PAYLOAD_BYTES + 10)),
    "price_outside_range": _bar(close=170.0),
    "negative_volume": _bar(volume=-5.0),
    "unknown_kind": orjson.dumps({**GOOD_BAR, "v": 1, "kind": "quote"}),
}


@pytest.mark.parametrize("reason", sorted(BAD_BARS))
def test_bad_bar_is_rejected_with_its_reason(reason: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        decode(TOPIC_BARS, BAD_BARS[reason])
    assert err.value.reason == reason


def test_bool_is_not_a_number() -> None:
    with pytest.raises(InvalidMessage) as err:
        decode(TOPIC_BARS, _bar(volume=True))
    assert err.value.reason == "wrong_type"


def test_trade_side_and_quantity_are_checked() -> None:
    trade = {
        "account_id": "SIM0001",
        "trade_id": "t1",
        "symbol": "SPY",
        "side": "buy",
        "quantity": 10.0,
        "price": 168.0,
        "event_time_ms": GOOD_BAR["event_time_ms"],
    }
    assert decode(TOPIC_TRADES, encode("trade", trade))["quantity"] == 10.0
    with pytest.raises(InvalidMessage) as err:
        decode(TOPIC_TRADES, encode("trade", {**trade, "side": "hold"}))
    assert err.value.reason == "bad_side"
    with pytest.raises(InvalidMessage) as err:
        decode(TOPIC_TRADES, encode("trade", {**trade, "quantity": 0}))
    assert err.value.reason == "non_positive_quantity"


def test_every_real_replay_bar_decodes_to_its_source_values(data_dir) -> None:
    bars = load_intraday_bars(data_dir).head(3000)
    decoded = [decode(TOPIC_BARS, value) for _key, value, _ms in bar_messages(bars)]
    assert len(decoded) == len(bars)
    assert [d["symbol"] for d in decoded] == bars["symbol"].tolist()
    assert [d["close"] for d in decoded] == bars["close"].tolist()
    expected_ms = (bars["event_timestamp"].astype("int64") // 1_000_000).tolist()
    assert [d["event_time_ms"] for d in decoded] == expected_ms


def test_a_key_that_is_not_the_entity_is_key_mismatch() -> None:
    from stream_jobs.schemas import TOPIC_POSITIONS, check_key

    bar = decode(TOPIC_BARS, _bar(symbol="AIG"))
    check_key(TOPIC_BARS, b"AIG", bar)  # the right key passes
    for key in (b"SPY", None, b"aig", b"AIG "):
        with pytest.raises(InvalidMessage) as err:
            check_key(TOPIC_BARS, key, bar)
        assert err.value.reason == "key_mismatch"
    mark = {"account_id": "SIM0001", "symbol": "SPY", "quantity": 5.0, "mark_price": 168.0}
    position = decode(
        TOPIC_POSITIONS, encode("position", {**mark, "event_time_ms": GOOD_BAR["event_time_ms"]})
    )
    check_key(TOPIC_POSITIONS, b"SIM0001", position)
    with pytest.raises(InvalidMessage) as err:
        check_key(TOPIC_POSITIONS, b"SPY", position)  # keyed by symbol instead of account
    assert err.value.reason == "key_mismatch"


# Values each bar field takes in the wiring test below: valid ones (float, int), and every kind of
# bad one the rules name (type, sign, range, bool, missing, the edges of the ranges).
FIELD_VALUES = {
    "symbol": ["SPY", "", 7, None, ...],
    "event_time_ms": [1381152600000, 0, -1, 1.5e12, True, "1", ..., 10**15],
    "open": [168.0, 168, 167.9, 168.5, 0.0, -1.0, True, "168", ...],
    "high": [168.5, 169, 167.9, 1e308, ...],
    "low": [167.9, 167, 0.0, 168.6, ...],
    "close": [168.2, 168.5, 167.9, 170.0, None],
    "volume": [1000.0, 0, 0.0, -5.0, 1e308, False, ...],
}


def _variants() -> list[dict[str, object]]:
    """Every single-field change of GOOD_BAR, and every pair of them (a few thousand)."""
    names = list(FIELD_VALUES)
    out = []
    for i, a in enumerate(names):
        for va in FIELD_VALUES[a]:
            out.append({a: va})
            for b in names[i + 1 :]:
                out.extend({a: va, b: vb} for vb in FIELD_VALUES[b])
    return out


def test_wiring_fast_bar_path_agrees_with_the_checked_path() -> None:
    """`_bar`'s fast path must accept exactly what `_bar_checked` (the rules one by one) accepts,
    with the same values, and leave every rejection (and its reason) to it."""
    from stream_jobs.schemas import _bar as bar_fast
    from stream_jobs.schemas import _bar_checked

    now = int(time.time() * 1000)
    accepted = rejected = 0
    for change in _variants():
        msg = {k: v for k, v in {**GOOD_BAR, **change}.items() if v is not ...}
        try:
            want = _bar_checked(dict(msg), now)
        except InvalidMessage as exc:
            with pytest.raises(InvalidMessage) as err:
                bar_fast(dict(msg), now)
            assert err.value.reason == exc.reason, change
            rejected += 1
            continue
        got = bar_fast(dict(msg), now)
        assert got == want and all(type(got[k]) is type(want[k]) for k in want), change
        accepted += 1
    assert accepted > 100 and rejected > 500  # both sides of the rules were exercised
