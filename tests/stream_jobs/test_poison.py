"""Poison messages never stop the market job (real Tansu broker, PostgreSQL, Redis; prod profile).

One real trading day of minute bars; in the middle of it, in EVERY partition, a 1.02 MB message
(over librdkafka's 1,000,000-byte producer default, under Apache Kafka's 1,048,588-byte broker
default) and a valid bar keyed with another symbol. The job keeps running: every valid bar is in
the offline log exactly once, with values equal to the batch catalog on the same bars, and the DLQ
holds the poison messages with their reasons, original size and sha256.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import orjson
import pandas as pd
import pytest

from stream_jobs.consistency import compare, day_bars, history_batch_features
from stream_jobs.offline_log import MARKET_LOG, OfflineLog
from stream_jobs.replay import bar_messages
from stream_jobs.schemas import TOPIC_BARS, dlq_topic

pytestmark = [pytest.mark.kafka, pytest.mark.prod]
DAY = "2013-10-07"
BIG = 1_020_000


@pytest.fixture(scope="module")
def poison_prod(settings_factory):  # noqa: ANN001, ANN201
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_poison")
    apply_repo(settings)
    return settings


def _producer(bootstrap: str):  # noqa: ANN202
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config

    ensure_topics(bootstrap, [TOPIC_BARS, dlq_topic(TOPIC_BARS)])
    # a producer that may send what Apache Kafka's broker default accepts (1,048,588 bytes)
    return Producer(producer_config(bootstrap, **{"message.max.bytes": 1_048_588}))


def _read_all(bootstrap: str, topic: str) -> list:
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config

    c = Consumer(consumer_config(bootstrap, f"t.read.{topic}"))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, empty = [], 0
    while empty < 4:
        msgs = c.consume(1000, 0.5)
        empty = 0 if msgs else empty + 1
        out += [m for m in msgs if not m.error()]
    c.close()
    return out


def _run(settings, bootstrap: str, group: str, processor=None):  # noqa: ANN001, ANN202
    from stream_jobs.jobs import JobOptions, build_loop

    loop = build_loop(
        settings,
        "market",
        JobOptions(
            bootstrap=bootstrap, group=group, idle_exit_seconds=1.5, max_seconds=180, batch_size=200
        ),
    )
    if processor is not None:
        loop.processor = processor
    summary = loop.run()
    loop.writer.close()
    return loop, summary


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The committed offset of `group` per partition of `topic`."""
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config

    c = Consumer(consumer_config(bootstrap, group))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def _next_offsets(messages: list) -> dict[int, int]:
    """Offset after the last message of each partition (what a drained group has committed)."""
    out: dict[int, int] = {}
    for m in messages:
        out[m.partition()] = max(out.get(m.partition(), 0), m.offset() + 1)
    return out


def _assert_log_equals_batch(settings, bars: pd.DataFrame) -> None:  # noqa: ANN001
    log = OfflineLog(settings).read(MARKET_LOG)
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    day = log[(ts >= bars["event_timestamp"].min()) & (ts <= bars["event_timestamp"].max())]
    keys = list(zip(day["symbol"], pd.to_datetime(day["event_timestamp"], utc=True), strict=True))
    assert sorted(keys) == sorted(zip(bars["symbol"], bars["event_timestamp"], strict=True))
    report = compare(day, history_batch_features(settings, bars), DAY)
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)


def _online_last_close(settings, symbols: list[str]) -> list[float]:  # noqa: ANN001
    from finfeast.store import get_store
    from stream_jobs.views import market_view

    got = (
        get_store(settings)
        .get_online_features(
            features=[f"{market_view().name}:last_close"],
            entity_rows=[{"symbol": s} for s in symbols],
        )
        .to_dict()
    )
    return got["last_close"]


def test_big_and_mis_keyed_messages_in_every_partition(poison_prod, fresh_broker) -> None:
    settings = poison_prod
    bars = day_bars(settings, DAY)
    messages = list(bar_messages(bars))
    half = len(messages) // 2
    producer = _producer(fresh_broker)
    for key, value, _ms in messages[:half]:
        producer.produce(TOPIC_BARS, key=key, value=value)
    assert producer.flush(30) == 0
    partitions = sorted(producer.list_topics(TOPIC_BARS, timeout=10).topics[TOPIC_BARS].partitions)
    assert len(partitions) == 3
    big: dict[int, bytes] = {}
    aig_last = bars[bars["symbol"] == "AIG"].iloc[-1]
    for p in partitions:
        # 1.02 MB: a valid-looking bar padded with a field (any content must be survivable)
        pad = BIG - 200
        big[p] = orjson.dumps(
            {"v": 1, "kind": "bar", "symbol": "SPY", "pad": "x" * pad, "event_time_ms": 1}
        )
        producer.produce(TOPIC_BARS, key=b"SPY", value=big[p], partition=p)
        # a VALID bar for AIG, newer than AIG's last real bar, keyed with another symbol: if it were
        # processed it would become AIG's online row
        wrong = orjson.dumps(
            {
                "v": 1,
                "kind": "bar",
                "symbol": "AIG",
                "event_time_ms": int(aig_last["event_timestamp"].value // 1_000_000) + 3_600_000,
                "open": 40.0,
                "high": 41.0,
                "low": 39.0,
                "close": 40.5,
                "volume": 100.0,
            }
        )
        producer.produce(TOPIC_BARS, key=b"SPY", value=wrong, partition=p)
    for key, value, _ms in messages[half:]:
        producer.produce(TOPIC_BARS, key=key, value=value)
    assert producer.flush(30) == 0
    assert all(len(v) > 1_000_000 for v in big.values())

    loop, summary = _run(settings, fresh_broker, "t.poison")

    # the job kept going: every message consumed and committed in every partition
    assert summary.events_in == len(messages) + 2 * len(partitions)
    everything = _read_all(fresh_broker, TOPIC_BARS)
    assert len(everything) == summary.events_in
    assert _committed(fresh_broker, "t.poison", TOPIC_BARS) == _next_offsets(everything)
    assert summary.dlq_by_reason == {"oversized": 3, "key_mismatch": 3}
    assert (
        loop.metrics.value("finfeast_stream_dlq_total", topic=TOPIC_BARS, reason="oversized") == 3
    )
    assert (
        loop.metrics.value("finfeast_stream_dlq_total", topic=TOPIC_BARS, reason="key_mismatch")
        == 3
    )
    # every valid bar processed once, values equal to batch; the mis-keyed AIG bar never applied
    _assert_log_equals_batch(settings, bars)
    last = bars.groupby("symbol").tail(1).set_index("symbol")
    symbols = sorted(last.index)
    assert _online_last_close(settings, symbols) == [float(last.loc[s, "close"]) for s in symbols]

    # the DLQ holds each with its reason, coordinates, size and hash; big payloads truncated
    letters = _read_all(fresh_broker, dlq_topic(TOPIC_BARS))
    by_reason = Counter(dict(m.headers())["error.reason"].decode() for m in letters)
    assert by_reason == {"oversized": 3, "key_mismatch": 3}
    for m in letters:
        h = {k: v.decode() for k, v in m.headers()}
        assert int(h["source.partition"]) in partitions
        if h["error.reason"] == "oversized":
            original = big[int(h["source.partition"])]
            assert int(h["original.size"]) == len(original)
            assert h["original.sha256"] == hashlib.sha256(original).hexdigest()
            assert h["payload.truncated"] == "true"
            assert len(m.value()) < 1_000_000 and original.startswith(m.value())
        else:
            assert h["payload.truncated"] == "false" and h["error.stage"] == "validate"
            assert orjson.loads(m.value())["symbol"] == "AIG"
            assert h["original.sha256"] == hashlib.sha256(m.value()).hexdigest()
    assert loop.metrics.total("finfeast_stream_dlq_local_total") == 0


def test_dlq_refusal_is_recorded_locally_and_skipped(fresh_broker, tmp_path) -> None:
    """Where even the truncated dead letter is refused, it is kept in a local file with its reason."""
    from confluent_kafka import Consumer, Producer

    from stream_jobs.broker import consumer_config, ensure_topics, producer_config
    from stream_jobs.dead_letter import DeadLetters
    from stream_jobs.metrics import JobMetrics

    ensure_topics(fresh_broker, [TOPIC_BARS, dlq_topic(TOPIC_BARS)])
    value = b"\xff" * 1_040_000
    p = _producer(fresh_broker)
    p.produce(TOPIC_BARS, key=b"SPY", value=value, partition=0)
    assert p.flush(30) == 0
    c = Consumer(consumer_config(fresh_broker, "t.local"))
    c.subscribe([TOPIC_BARS])
    msgs: list = []
    for _ in range(60):
        msgs += [m for m in c.consume(10, 0.5) if not m.error()]
        if msgs:
            break
    c.close()
    assert msgs and len(msgs[0].value()) == len(value)
    metrics = JobMetrics("t")
    # a DLQ budget above what the producer takes: the produce itself is refused
    dead = DeadLetters(
        Producer(producer_config(fresh_broker)), metrics, local_dir=tmp_path, max_bytes=2_000_000
    )
    dead.send(msgs[0], "oversized", "test")
    dead.flush()
    lines = (tmp_path / f"{dlq_topic(TOPIC_BARS)}.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["reason"] == "oversized" and record["original_size"] == len(value)
    assert record["original_sha256"] == hashlib.sha256(value).hexdigest()
    assert "MSG_SIZE_TOO_LARGE" in record["dlq_failure"] or "too large" in record["dlq_failure"]
    assert (tmp_path / "payloads" / f"{record['original_sha256']}.bin").read_bytes() == value
    assert (
        metrics.value("finfeast_stream_dlq_local_total", topic=TOPIC_BARS, reason="oversized") == 1
    )
    assert dead.count == 1


class _FailsOn:
    """The real market processor, raising (before touching any state) on one marked bar: a stand-in
    for a bug in feature computation that only one message triggers."""

    def __init__(self, volume: float) -> None:
        from stream_jobs.market_job import MarketProcessor

        self.inner = MarketProcessor()
        self.volume = volume

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    def process(self, events):  # noqa: ANN001, ANN201
        if any(e.value.get("volume") == self.volume for e in events):
            raise ZeroDivisionError("feature computation failed on this bar")
        return self.inner.process(events)


def test_processing_failure_dead_letters_only_the_culprit(poison_prod, fresh_broker) -> None:
    settings = poison_prod
    day = "2013-10-08"
    bars = day_bars(settings, day)
    producer = _producer(fresh_broker)
    messages = list(bar_messages(bars))
    marked = orjson.loads(messages[len(messages) // 3][1])
    culprit = orjson.dumps(
        {**marked, "event_time_ms": marked["event_time_ms"] + 1, "volume": 7.5e9}
    )
    for i, (key, value, _ms) in enumerate(messages):
        producer.produce(TOPIC_BARS, key=key, value=value)
        if i == len(messages) // 3:
            producer.produce(TOPIC_BARS, key=key, value=culprit)
    assert producer.flush(30) == 0
    loop, summary = _run(settings, fresh_broker, "t.procfail", processor=_FailsOn(7.5e9))
    assert summary.dlq_by_reason == {"processing_error": 1}
    letters = _read_all(fresh_broker, dlq_topic(TOPIC_BARS))
    assert [m.value() for m in letters] == [culprit]
    h = {k: v.decode() for k, v in letters[0].headers()}
    assert h["error.stage"] == "process" and "ZeroDivisionError" in h["error.detail"]
    log = OfflineLog(settings).read(MARKET_LOG)
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    day_log = log[(ts >= bars["event_timestamp"].min()) & (ts <= bars["event_timestamp"].max())]
    assert len(day_log) == len(bars)
    report = compare(day_log, history_batch_features(settings, bars), day)
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)


class _UnwritableRow:
    """The real market processor whose online row for one symbol, in the batch holding one chosen
    bar, carries a value the real writer cannot encode: a stand-in for a bug in a row's values."""

    def __init__(self, symbol: str, ms: int) -> None:
        from stream_jobs.market_job import MarketProcessor

        self.inner = MarketProcessor()
        self.symbol, self.ms = symbol, ms

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    def process(self, events):  # noqa: ANN001, ANN201
        out = self.inner.process(events)
        hit = any(
            e.value["symbol"] == self.symbol and e.value["event_time_ms"] == self.ms for e in events
        )
        rows = out[self.inner.view.name]
        if hit:
            rows.latest = [
                (k, ms, {**v, "last_close": "not a number"}) if k == self.symbol else (k, ms, v)
                for k, ms, v in rows.latest
            ]
        return out


def test_a_row_the_store_cannot_take_dead_letters_that_entitys_messages(
    poison_prod, fresh_broker
) -> None:
    settings = poison_prod
    day = "2013-10-09"
    bars = day_bars(settings, day)
    chosen = bars[bars["symbol"] == "BAC"].iloc[100]
    ms = int(chosen["event_timestamp"].value // 1_000_000)
    producer = _producer(fresh_broker)
    for key, value, _ms in bar_messages(bars):
        producer.produce(TOPIC_BARS, key=key, value=value)
    assert producer.flush(30) == 0
    loop, summary = _run(settings, fresh_broker, "t.writefail", processor=_UnwritableRow("BAC", ms))
    letters = _read_all(fresh_broker, dlq_topic(TOPIC_BARS))
    assert letters and set(summary.dlq_by_reason) == {"write_error"}
    dead = {
        (orjson.loads(m.value())["symbol"], orjson.loads(m.value())["event_time_ms"])
        for m in letters
    }
    assert ("BAC", ms) in dead and {s for s, _ in dead} == {"BAC"}
    for m in letters:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["error.stage"] == "process" and "online write" in h["error.detail"]
    log = OfflineLog(settings).read(MARKET_LOG)
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    day_log = log[(ts >= bars["event_timestamp"].min()) & (ts <= bars["event_timestamp"].max())]
    bar_ms = bars["event_timestamp"].astype("datetime64[ms, UTC]").astype("int64")
    kept = bars[[(s, int(t)) not in dead for s, t in zip(bars["symbol"], bar_ms, strict=True)]]
    assert len(kept) == len(bars) - len(dead)  # nothing else lost
    got = set(
        zip(day_log["symbol"], pd.to_datetime(day_log["event_timestamp"], utc=True), strict=True)
    )
    assert got == set(zip(kept["symbol"], kept["event_timestamp"], strict=True))
    batch = history_batch_features(settings, bars)
    batch = batch.merge(kept[["symbol", "event_timestamp"]], on=["symbol", "event_timestamp"])
    report = compare(day_log, batch, day)
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)
