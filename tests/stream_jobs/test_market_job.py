"""The market job against the real broker, Redis and PostgreSQL (prod profile).

One real trading day of minute bars (SPY, AIG, BAC, IBM) with every kind of bad message mixed in
goes through `finfeast`'s market job; the DLQ, the offline log, the online store (read through
Feast) and the metrics are checked against the input.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest
from test_schemas import BAD_BARS

from stream_jobs.consistency import compare, day_bars
from stream_jobs.offline_log import MARKET_LOG, OfflineLog
from stream_jobs.replay import bar_messages
from stream_jobs.schemas import TOPIC_BARS, dlq_topic
from stream_jobs.views import market_view

pytestmark = [pytest.mark.kafka, pytest.mark.prod]
DAY = "2013-10-08"
GROUP = "t.market"


def _producer(bootstrap: str):  # noqa: ANN202
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config

    ensure_topics(bootstrap, [TOPIC_BARS, dlq_topic(TOPIC_BARS)])
    return Producer(producer_config(bootstrap))


def _run(settings, bootstrap: str, **kw):  # noqa: ANN001, ANN202
    from stream_jobs.jobs import JobOptions, build_loop

    loop = build_loop(
        settings,
        "market",
        JobOptions(bootstrap=bootstrap, group=GROUP, idle_exit_seconds=1.0, max_seconds=120, **kw),
    )
    summary = loop.run()
    loop.writer.close()
    return loop, summary


@pytest.fixture(scope="module")
def market_run(stream_prod, broker):  # noqa: ANN001, ANN201
    bars = day_bars(stream_prod, DAY)
    producer = _producer(broker)
    bad_sent: Counter[str] = Counter()
    bad_payloads = {}
    reasons = sorted(BAD_BARS)
    for i, (key, value, _ms) in enumerate(bar_messages(bars)):
        producer.produce(TOPIC_BARS, key=key, value=value)
        if i % 150 == 75:
            reason = reasons[sum(bad_sent.values()) % len(reasons)]
            producer.produce(TOPIC_BARS, key=key, value=BAD_BARS[reason])
            bad_sent[reason] += 1
            bad_payloads[BAD_BARS[reason]] = reason
    for reason in reasons:  # every kind at least once
        if not bad_sent[reason]:
            producer.produce(TOPIC_BARS, key=b"SPY", value=BAD_BARS[reason])
            bad_sent[reason] += 1
            bad_payloads[BAD_BARS[reason]] = reason
    assert producer.flush(30) == 0
    loop, summary = _run(stream_prod, broker)
    return bars, bad_sent, bad_payloads, loop, summary


def _dead_letters(bootstrap: str) -> list:
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config

    c = Consumer(consumer_config(bootstrap, "t.dlq.reader"))
    topic = dlq_topic(TOPIC_BARS)
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, empty = [], 0
    while empty < 5:
        msgs = c.consume(1000, 0.5)
        empty = 0 if msgs else empty + 1
        out += [m for m in msgs if not m.error()]
    c.close()
    return out


def test_every_bad_message_is_dead_lettered_with_its_reason(market_run, broker) -> None:
    bars, bad_sent, bad_payloads, loop, summary = market_run
    letters = _dead_letters(broker)
    got = Counter(dict(m.headers())["error.reason"].decode() for m in letters)
    assert got == bad_sent
    for m in letters:  # original bytes kept, reason matches the payload's defect
        assert bad_payloads[m.value()] == dict(m.headers())["error.reason"].decode()
    assert summary.dlq == sum(bad_sent.values())
    assert loop.metrics.total("finfeast_stream_dlq_total") == sum(bad_sent.values())


def test_every_good_bar_is_in_the_offline_log_once(market_run, stream_prod) -> None:
    bars, bad_sent, _, loop, summary = market_run
    log = OfflineLog(stream_prod).read(MARKET_LOG)
    keys = set(zip(log["symbol"], pd.to_datetime(log["event_timestamp"], utc=True), strict=True))
    expected = set(zip(bars["symbol"], bars["event_timestamp"], strict=True))
    assert keys == expected
    assert len(log) == len(bars)
    assert summary.events_in == len(bars) + sum(bad_sent.values())
    assert loop.metrics.total("finfeast_stream_events_in_total") == summary.events_in


def test_stream_features_equal_batch_catalog(market_run, stream_prod) -> None:
    bars, *_ = market_run
    from stream_jobs.consistency import history_batch_features

    log = OfflineLog(stream_prod).read(MARKET_LOG)
    report = compare(log, history_batch_features(stream_prod, bars), DAY)
    print(report)
    assert report.missing_rows == 0
    assert report.rate == 1.0, report.mismatches_by_feature


def _online(settings, symbols: list[str]) -> dict:  # noqa: ANN001
    from finfeast.store import get_store

    view = market_view()
    store = get_store(settings)
    return store.get_online_features(
        features=[f"{view.name}:{n}" for n in view.feature_names],
        entity_rows=[{"symbol": s} for s in symbols],
    ).to_dict()


def _same(a: object, b: object) -> bool:
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    return (a_null and b_null) or (not a_null and not b_null and float(a) == float(b))


def test_online_store_holds_each_symbols_last_logged_row(market_run, stream_prod) -> None:
    log = OfflineLog(stream_prod).read(MARKET_LOG)
    last = log.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    symbols = sorted(last.index)
    online = _online(stream_prod, symbols)
    for name in market_view().feature_names:
        for i, sym in enumerate(symbols):
            assert _same(online[name][i], last.loc[sym, name]), (
                name,
                sym,
                online[name][i],
                last.loc[sym, name],
            )


def test_replayed_and_late_bars_change_nothing(market_run, stream_prod, broker) -> None:
    bars, *_ = market_run
    before_online = _online(stream_prod, ["SPY"])
    before_log = OfflineLog(stream_prod).read(MARKET_LOG)
    replayed = bars[bars["symbol"] == "SPY"].head(40)
    producer = _producer(broker)
    for key, value, _ms in bar_messages(replayed):
        producer.produce(TOPIC_BARS, key=key, value=value)
    assert producer.flush(30) == 0
    loop, summary = _run(stream_prod, broker)
    assert summary.events_in == len(replayed)
    assert summary.rows_out == 0
    assert loop.metrics.total("finfeast_stream_late_events_total") == len(replayed)
    assert _online(stream_prod, ["SPY"]) == before_online
    after_log = OfflineLog(stream_prod).read(MARKET_LOG)
    assert len(after_log) == len(before_log)


def test_trade_ticks_update_the_last_trade_view(market_run, stream_prod, broker) -> None:
    from finfeast.store import get_store
    from stream_jobs.replay import load_spy_ticks, tick_messages

    ticks = load_spy_ticks(stream_prod.data_dir).iloc[50_000:50_500]
    producer = _producer(broker)
    for key, value, _ms in tick_messages(ticks):
        producer.produce(TOPIC_BARS, key=key, value=value)
    assert producer.flush(30) == 0
    loop, summary = _run(stream_prod, broker)
    assert summary.events_in == len(ticks) and summary.dlq == 0
    got = (
        get_store(stream_prod)
        .get_online_features(
            features=["stream_trade_tick:last_trade_price", "stream_trade_tick:tick_count"],
            entity_rows=[{"symbol": "SPY"}],
        )
        .to_dict()
    )
    assert got["last_trade_price"] == [float(ticks["price"].iloc[-1])]
    assert got["tick_count"] == [len(ticks)]
