"""Checkpoints, bootstrap, backfill and cooperative rebalancing against the real broker (Tansu),
Redis and PostgreSQL (prod profile: offline log appended to PostgreSQL, checkpoints in it).

- Backfill = a replay through the job: `finfeast stream backfill` of a day writes exactly the
  rows (every column, River scores included) the job writes when the day is streamed (wiring:
  both use the market processor; the catalog values are checked against batch separately).
- Restore from a checkpoint: a job stops after an OLD checkpoint (its commits went further); the
  next run restores it, replays only [checkpoint, committed) and continues: its log equals a full
  replay, and its catalog values equal the batch catalog over the full history.
- Takeover after retention: the topic starts mid-history (Tansu has no DeleteRecords) and no
  checkpoint survives; the second owner bootstraps from the intraday history and still matches
  batch (the batch catalog over the full file, computed independently of the stream).
- Three consumers join and leave mid-stream (cooperative-sticky): nothing lost, nothing
  duplicated in the offline log, online values equal batch, and a joining member moves only
  some partitions (the first member keeps the rest).
- A rebuild that cannot reach the committed offset raises `RebuildError` within its timeout and
  checkpoints nothing; a broker lookup timing out in a takeover is retried; any other exception
  in a rebalance callback fails the job with that exception (not confluent-kafka's mangled one).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from stream_jobs.consistency import compare, day_bars, history_batch_features
from stream_jobs.offline_log import MARKET_LOG, OfflineLog
from stream_jobs.replay import bar_messages, produce
from stream_jobs.schemas import TOPIC_BARS
from stream_jobs.views import bar_catalog_features, market_view

pytestmark = [pytest.mark.kafka, pytest.mark.prod, pytest.mark.slow]


@pytest.fixture(scope="module")
def state_prod(settings_factory):  # noqa: ANN001, ANN201
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_state")
    apply_repo(settings)
    return settings


def _produce(bootstrap: str, bars: pd.DataFrame, seconds: float = 0.0) -> None:
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config

    ensure_topics(bootstrap, [TOPIC_BARS])
    speed = 0.0
    if seconds:
        span = (bars["event_timestamp"].iloc[-1] - bars["event_timestamp"].iloc[0]).total_seconds()
        speed = span / seconds
    produce(Producer(producer_config(bootstrap)), TOPIC_BARS, bar_messages(bars), speed=speed)


def _loop(settings, bootstrap: str, group: str, **kw):  # noqa: ANN001, ANN202
    from stream_jobs.jobs import JobOptions, build_loop

    options = {"idle_exit_seconds": 2.0, "max_seconds": 240, "batch_size": 200, **kw}
    return build_loop(settings, "market", JobOptions(bootstrap=bootstrap, group=group, **options))


def _run(loop):  # noqa: ANN001, ANN202
    try:
        return loop.run()
    finally:
        loop.writer.close()


def _day(log: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    lo, hi = bars["event_timestamp"].min(), bars["event_timestamp"].max()
    out = log[(ts >= lo) & (ts <= hi)].copy()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def _assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same keys, every feature equal (null = null), River scores included."""
    names = market_view().feature_names
    assert list(zip(a["symbol"], a["event_timestamp"], strict=True)) == list(
        zip(b["symbol"], b["event_timestamp"], strict=True)
    )
    for name in names:
        x = pd.to_numeric(a[name], errors="coerce").to_numpy(dtype="float64")
        y = pd.to_numeric(b[name], errors="coerce").to_numpy(dtype="float64")
        same = (np.isnan(x) & np.isnan(y)) | (x == y)
        bad = np.flatnonzero(~same)[:5]
        assert same.all(), (
            name,
            int((~same).sum()),
            [(a["symbol"].iloc[i], str(a["event_timestamp"].iloc[i]), x[i], y[i]) for i in bad],
        )


def _assert_batch(settings, log: pd.DataFrame, bars: pd.DataFrame, day: str) -> None:  # noqa: ANN001
    report = compare(log, history_batch_features(settings, bars), day)
    assert report.missing_rows == 0 and report.rate == 1.0, str(report)


def test_backfill_equals_a_replay_through_the_job(state_prod, fresh_broker) -> None:
    from stream_jobs.backfill import backfill

    day = "2013-10-07"
    bars = day_bars(state_prod, day)
    _produce(fresh_broker, bars)
    summary = _run(_loop(state_prod, fresh_broker, "t.backfill"))
    assert summary.events_in == len(bars)
    log = OfflineLog(state_prod)
    streamed = _day(log.read(MARKET_LOG), bars)
    result = backfill(state_prod, start=day, end="2013-10-08", table="backfill_log")
    assert result.rows == len(bars) and result.bootstrapped_bars > 0
    backfilled = _day(log.read("backfill_log"), bars)
    assert len(streamed) == len(bars)
    _assert_same_rows(streamed, backfilled)
    _assert_batch(state_prod, backfilled, bars, day)


class _Recording:
    """A checkpoint store that also keeps every blob written (to put an old one back)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.saved: list[tuple[int, bytes]] = []

    def save(self, group: str, partition: int, blob: bytes, background: bool = False) -> None:
        self.saved.append((partition, blob))
        self.inner.save(group, partition, blob, background)

    def load(self, group: str, partition: int) -> bytes | None:
        return self.inner.load(group, partition)

    def delete(self, group: str) -> None:
        self.inner.delete(group)


def test_restore_from_a_checkpoint_equals_a_full_replay(state_prod, fresh_broker) -> None:
    from stream_jobs.backfill import backfill
    from stream_jobs.checkpoint import read_header

    day, group = "2013-10-08", "t.restore"
    bars = day_bars(state_prod, day)
    _produce(fresh_broker, bars)
    first = _loop(
        state_prod, fresh_broker, group, max_events=len(bars) // 2, checkpoint_every_messages=300
    )
    store = _Recording(first.checkpoints.store)
    first.checkpoints.store = store
    a = _run(first)
    assert 0 < a.events_in < len(bars)
    # The process "died" after its first checkpoint of each partition: put those back.
    oldest: dict[int, bytes] = {}
    for partition, blob in store.saved:
        oldest.setdefault(partition, blob)
    assert oldest, "no checkpoint was written"
    for partition, blob in oldest.items():
        store.inner.save(group, partition, blob)
    behind = [read_header(b)["offsets"][TOPIC_BARS] for b in oldest.values()]
    second = _loop(state_prod, fresh_broker, group)
    b = _run(second)
    assert b.restored == len(oldest)
    assert b.replayed > 0 and sum(behind) < a.events_in  # replay from the checkpoint, not 0
    assert a.events_in + b.events_in == len(bars)  # the second run started at the commits
    streamed = _day(OfflineLog(state_prod).read(MARKET_LOG), bars)
    backfill(state_prod, start=day, end="2013-10-09", table="restore_reference_log")
    full = _day(OfflineLog(state_prod).read("restore_reference_log"), bars)
    _assert_same_rows(streamed, full)
    _assert_batch(state_prod, streamed, bars, day)


def test_takeover_after_retention_still_matches_batch(state_prod, fresh_broker) -> None:
    """The topic holds one day of a longer history (its older messages are gone), no checkpoint."""
    day, group = "2013-10-10", "t.retention"
    bars = day_bars(state_prod, day)
    _produce(fresh_broker, bars)
    a = _run(_loop(state_prod, fresh_broker, group, checkpoints=False, max_events=len(bars) // 3))
    b = _run(_loop(state_prod, fresh_broker, group, checkpoints=False))
    assert a.events_in + b.events_in == len(bars)
    assert b.restored == 0 and b.bootstrapped_bars > 0  # the new owner bootstrapped from history
    streamed = _day(OfflineLog(state_prod).read(MARKET_LOG), bars)
    assert len(streamed) == len(bars)
    _assert_batch(state_prod, streamed, bars, day)
    # the check can fail: the same day without the earlier history is not batch
    from stream_jobs.consistency import batch_features

    assert compare(streamed, batch_features(bars), day).rate < 1.0


def test_three_consumers_join_and_leave_lose_and_duplicate_nothing(
    state_prod, fresh_broker
) -> None:
    from finfeast.store import get_store

    day, group = "2013-10-11", "t.three"
    bars = day_bars(state_prod, day)
    _produce(fresh_broker, bars.head(200))  # the topics exist and the stream has begun
    loops = [
        _loop(state_prod, fresh_broker, group, idle_exit_seconds=None if i < 2 else 5.0)
        for i in range(3)
    ]
    summaries: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda i=i: summaries.update({i: _run(loops[i])})) for i in range(3)
    ]

    def wait_for(what: str, done, timeout: float = 90.0) -> None:  # noqa: ANN001
        # a loaded CI machine takes seconds to join a group: wait for the fact, not a fixed time
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting: {what}"
            time.sleep(0.1)

    def held(loop) -> set:  # noqa: ANN001 - the partitions a member holds now
        parts: set = set()
        for kind, moved in list(loop.assignments):
            parts = parts | set(moved) if kind == "assign" else parts - set(moved)
        return parts

    # The stream flows in slices, each produced while one membership change happens, so every
    # change is mid-stream however long joining takes on a loaded machine.
    slices = np.array_split(np.arange(200, len(bars)), 5)

    def flowing(k: int) -> threading.Thread:
        t = threading.Thread(target=_produce, args=(fresh_broker, bars.iloc[slices[k]], 3.0))
        t.start()
        return t

    threads[0].start()
    wait_for("first member consumed", lambda: loops[0].summary.events_in > 0)
    producer = flowing(0)
    threads[1].start()  # joins mid-stream
    wait_for("second member assigned", lambda: held(loops[1]))
    producer.join()
    producer = flowing(1)
    threads[2].start()  # joins mid-stream
    wait_for("third member assigned", lambda: held(loops[2]))
    producer.join()
    producer = flowing(2)
    left_by_first = held(loops[0])
    loops[0].stop()  # leaves mid-stream
    threads[0].join(60)
    wait_for(
        "first member's partitions taken over",
        lambda: left_by_first <= held(loops[1]) | held(loops[2]),
    )
    producer.join()
    producer = flowing(3)
    loops[1].stop()  # leaves mid-stream
    threads[1].join(60)
    wait_for("the last member holds every partition", lambda: len(held(loops[2])) == 3)
    producer.join()
    _produce(fresh_broker, bars.iloc[slices[4]], 3.0)
    threads[2].join(180)
    assert len(summaries) == 3
    assert sum(s.events_in for s in summaries.values()) >= len(bars)
    moves = {i: (s.events_in, loops[i].assignments) for i, s in summaries.items()}
    # the first and last members consumed; the second may hold only a partition no symbol of
    # the day hashes to, so it is asserted to have taken part, not to have consumed
    assert summaries[0].events_in > 0 and summaries[2].events_in > 0, str(moves)
    assert any(kind == "assign" and parts for kind, parts in loops[1].assignments), str(moves)
    # cooperative-sticky: the first member, holding all 3 partitions, gave up only some of them
    # when the second joined
    first_moves = loops[0].assignments
    assert first_moves[0][0] == "assign" and len(first_moves[0][1]) == 3, first_moves
    revokes = [parts for kind, parts in first_moves if kind == "revoke"]
    assert revokes and 0 < len(revokes[0]) < 3, first_moves
    log = OfflineLog(state_prod)
    raw = _day(log.read_raw(MARKET_LOG), bars)
    deduped = _day(log.read(MARKET_LOG), bars)
    expected = set(zip(bars["symbol"], bars["event_timestamp"], strict=True))
    assert set(zip(deduped["symbol"], deduped["event_timestamp"], strict=True)) == expected
    assert len(deduped) == len(bars)
    lost = [parts for loop in loops for kind, parts in loop.assignments if kind == "lost"]
    if not lost:  # revoked partitions are handed over exactly where their owner stopped
        assert len(raw) == len(bars), f"a handover re-emitted rows: {moves}"
    else:  # a partition lost without a revoke (the group moved on) is redelivered: at-least-once
        assert len(raw) >= len(bars), moves
    _assert_batch(state_prod, deduped, bars, day)
    # online = batch at each symbol's last bar (read through Feast)
    batch = history_batch_features(state_prod, bars)
    last = batch.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    symbols = sorted(last.index)
    names = [n for n, _ in bar_catalog_features()][:40]
    online = (
        get_store(state_prod)
        .get_online_features(
            features=[f"{market_view().name}:{n}" for n in names],
            entity_rows=[{"symbol": s} for s in symbols],
        )
        .to_dict()
    )
    for name in names:
        for i, s in enumerate(symbols):
            want, got = last.loc[s, name], online[name][i]
            if pd.isna(want):
                assert got is None or got != got, (name, s, got)
            else:
                assert abs(float(got) - float(want)) <= 1e-9 * max(1.0, abs(float(want))), (
                    name,
                    s,
                )


def test_a_rebuild_that_cannot_finish_fails_loudly_in_bounded_time(
    state_prod, fresh_broker
) -> None:
    """Committed offset beyond what the partition holds (an offset gap): no endless spin."""
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config
    from stream_jobs.checkpoint import Checkpoint, encode, partition_state
    from stream_jobs.consumer import RebuildError
    from stream_jobs.market_job import MarketProcessor

    group = "t.stuck"
    bars = day_bars(state_prod, "2013-10-09").head(300)
    _produce(fresh_broker, bars)
    c = Consumer(consumer_config(fresh_broker, group))
    c.commit(offsets=[TopicPartition(TOPIC_BARS, p, 100_000) for p in range(3)], asynchronous=False)
    c.close()
    loop = _loop(state_prod, fresh_broker, group, rebuild_timeout=3.0)
    for p in range(3):  # a checkpoint at offset 0: replay [0, 100000) cannot finish
        empty = partition_state(MarketProcessor(), p)
        loop.checkpoints.store.save(group, p, encode(Checkpoint(group, p, {TOPIC_BARS: 0}, empty)))
    t0 = time.monotonic()
    with pytest.raises(RebuildError, match="stopped at offset"):
        _run(loop)
    assert time.monotonic() - t0 < 60
    # The failed job hands over through the committed offsets only: the closing revoke did not
    # checkpoint its half-built state at the committed offset.
    for p in range(3):
        ckpt = loop.checkpoints.load(p)
        assert ckpt is not None and ckpt.offsets == {TOPIC_BARS: 0}


def _consumer_failing_committed(times: int, fail):  # noqa: ANN001, ANN202
    """The real client, whose first `times` committed-offset lookups fail by `fail(consumer)`."""
    import confluent_kafka

    class FailingCommitted(confluent_kafka.Consumer):
        failures = 0

        def committed(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if FailingCommitted.failures < times:
                FailingCommitted.failures += 1
                fail(self)
            return super().committed(*args, **kwargs)

    return FailingCommitted


def _timed_out(_consumer) -> None:  # noqa: ANN001 - as a loaded broker's lookup mid-rebalance
    import confluent_kafka

    raise confluent_kafka.KafkaException(
        confluent_kafka.KafkaError(confluent_kafka.KafkaError._TIMED_OUT)
    )


def test_a_broker_lookup_timing_out_in_a_takeover_is_retried(
    state_prod, fresh_broker, monkeypatch
) -> None:
    import confluent_kafka

    bars = day_bars(state_prod, "2013-10-10").head(300)
    _produce(fresh_broker, bars)
    flaky = _consumer_failing_committed(2, _timed_out)
    monkeypatch.setattr(confluent_kafka, "Consumer", flaky)
    summary = _run(_loop(state_prod, fresh_broker, "t.lookup_timeout"))
    assert flaky.failures == 2
    assert summary.retries >= 2
    assert summary.events_in == len(bars)


def test_a_failing_rebalance_callback_fails_the_job_with_its_own_exception(
    state_prod, fresh_broker, monkeypatch
) -> None:
    """confluent-kafka turns an exception escaping a rebalance callback into an object no
    `except` matches; the job raises the callback's own exception and checkpoints nothing."""
    import confluent_kafka

    group = "t.callback_error"
    _produce(fresh_broker, day_bars(state_prod, "2013-10-10").head(300))

    def seek_elsewhere(consumer) -> None:  # noqa: ANN001
        # raised by the client itself (not retriable): the kind confluent-kafka mangles
        consumer.seek(confluent_kafka.TopicPartition("not.assigned.here", 0, 0))

    monkeypatch.setattr(confluent_kafka, "Consumer", _consumer_failing_committed(1, seek_elsewhere))
    loop = _loop(state_prod, fresh_broker, group)
    with pytest.raises(confluent_kafka.KafkaException) as caught:
        _run(loop)
    assert caught.value.args[0].code() == confluent_kafka.KafkaError._UNKNOWN_PARTITION
    assert loop.summary.events_in == 0
    assert all(loop.checkpoints.load(p) is None for p in range(3))
