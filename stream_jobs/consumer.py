"""The at-least-once consumer loop shared by the stream jobs.

One batch = poll up to `batch_size` messages -> decode and validate each, including the key
(bad ones to the DLQ) -> the job's processor updates its per-entity state and returns feature rows
(a batch that raises is retried message by message; the message that raises is dead-lettered as
`processing_error`) -> write the rows to the online store (fast writer) -> upsert them into the
offline log -> flush the DLQ -> commit the offsets. A write that fails because a service is down
is retried with the one retry policy (`finfeast.retry`: backoff, bounded) and the offsets are not
committed until it succeeds, so a crash at any point means redelivery, never loss; redelivered
rows are harmless because both stores are idempotent by (entity, event time). A write that fails
for one entity's rows (not a dead service) dead-letters that entity's messages as `write_error`.

Test hook: `FINFEAST_FAULT=kill_after_online_write:N` (read once when the loop is built) SIGKILLs
the process right after the N-th batch's online write, before its offline log write and offset
commit: the fault tests use it to prove that the redelivery is idempotent.

Scaling: every process of a job joins the same consumer group (cooperative-sticky assignment:
a process joining or leaving moves only the partitions it must); partitions are keyed by entity, so
an entity's state lives in exactly one process. When a partition is assigned, its state is
restored from its latest checkpoint (`stream_jobs.checkpoint`) and only [checkpoint offset,
committed offset) is replayed (without emitting rows), bounded by `rebuild_timeout` (a rebuild
that cannot finish raises `RebuildError`: the job fails loudly rather than spin); a symbol with no
state is bootstrapped from offline history before its first bar (`stream_jobs.bootstrap`). A
revoked partition's state is checkpointed, then dropped. Without a usable checkpoint and without a
history source (the account job), the partition is replayed from its low watermark (bounded too).
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from finfeast import retry
from finfeast.errors import ConfigurationError, FinfeastError
from stream_jobs.bootstrap import Bootstrapper
from stream_jobs.broker import consumer_config, ensure_topics, producer_config
from stream_jobs.checkpoint import Checkpointer, restore_partition_state
from stream_jobs.dead_letter import DLQ_MAX_BYTES, DeadLetters
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import OfflineLog
from stream_jobs.online_writer import OnlineWriter, ViewSpec
from stream_jobs.schemas import InvalidMessage, check_key, decode, dlq_topic, entity_of
from stream_jobs.view_rows import ViewRows


@dataclass(frozen=True)
class Event:
    """A decoded, valid message with its Kafka coordinates."""

    topic: str
    partition: int
    offset: int
    value: dict[str, Any]
    kafka_ts_ms: int


@dataclass(frozen=True)
class Output:
    """Where a processor's rows go: an online feature view and an offline log table."""

    view: ViewSpec
    log_table: str


class Processor(Protocol):
    """A stream job's domain logic (per-entity state), independent of Kafka and the stores."""

    name: str
    topics: tuple[str, ...]
    outputs: tuple[Output, ...]

    def process(self, events: Sequence[Event]) -> dict[str, ViewRows]: ...

    def warm(self, events: Sequence[Event]) -> None: ...

    def forget_partition(self, topic: str, partition: int) -> None: ...

    def observe(self, metrics: JobMetrics) -> None: ...


@dataclass
class LoopConfig:
    """Consumer loop knobs (documented in docs/streaming.md)."""

    bootstrap: str
    group: str
    batch_size: int = 1000
    # consume() returns after a full batch or this long, so at a moderate input rate every event
    # waits up to this long: it is the loop's latency floor (was 20 ms). Under load batches fill
    # before it expires, so it does not limit throughput; idle, it is ~200 empty polls/s.
    poll_timeout: float = 0.005
    idle_exit_seconds: float | None = None  # stop after this long with no messages and no lag
    max_events: int | None = None
    max_seconds: float | None = None
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    # A service down longer than this ends the job with one line (ServiceUnavailable, exit 3).
    retry_max_seconds: float = 300.0
    # Dead letters the DLQ topic refuses are kept here (None: a `finfeast-dlq` temp folder).
    dlq_dir: str | None = None
    write_offline: bool = True
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    # A partition's state rebuild (replay from its checkpoint offset) must finish within this.
    rebuild_timeout: float = 60.0


class RebuildError(FinfeastError):
    """A newly assigned partition's state could not be rebuilt in time (broker down, gap, ...)."""


@dataclass
class LoopSummary:
    """Counts of one run of a job."""

    job: str
    events_in: int = 0
    rows_out: int = 0
    online_written: int = 0
    dlq: int = 0
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    late: int = 0
    batches: int = 0
    retries: int = 0
    seconds: float = 0.0
    checkpoints: int = 0
    restored: int = 0
    replayed: int = 0
    bootstrapped_bars: int = 0

    @property
    def status(self) -> str:
        return "ok"

    def __str__(self) -> str:
        return (
            f"{self.job}: {self.events_in} events in, {self.rows_out} rows out "
            f"({self.online_written} online writes), {self.dlq} dead-lettered, {self.late} late, "
            f"{self.batches} batches, {self.retries} retries in {self.seconds:.1f}s"
        )


FAULT_ENV = "FINFEAST_FAULT"


def kill_after_from_env() -> int | None:
    """N of the test hook `FINFEAST_FAULT=kill_after_online_write:N` (None when unset)."""
    text = os.environ.get(FAULT_ENV, "").strip()
    if not text:
        return None
    name, _, count = text.partition(":")
    if name != "kill_after_online_write" or not count.isdigit() or int(count) < 1:
        raise ConfigurationError(
            f"{FAULT_ENV}={text!r}: the only fault is kill_after_online_write:N (N >= 1)"
        )
    return int(count)


def _coords(topic: str, partition: int, offset: int) -> tuple[str, int, int]:
    return (topic, partition, offset)


class StreamLoop:
    """Runs a `Processor` over its topics with at-least-once delivery into the stores."""

    def __init__(
        self,
        processor: Processor,
        writer: OnlineWriter,
        offline: OfflineLog | None,
        config: LoopConfig,
        metrics: JobMetrics | None = None,
        checkpoints: Checkpointer | None = None,
        bootstrap: Bootstrapper | None = None,
    ) -> None:
        self.processor = processor
        self.checkpoints = checkpoints
        self.bootstrap = bootstrap
        self.writer = writer
        self.offline = offline
        self.config = config
        self.metrics = metrics or JobMetrics(processor.name)
        self.summary = LoopSummary(processor.name)
        self._stop = False
        self._consumer: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._last_lag_check = 0.0
        self._lag_total = 0
        self._processed: dict[tuple[str, int], Any] = {}  # last processed offset per partition
        self._positions: dict[tuple[str, int], int] = {}  # next offset the state corresponds to
        self._live: set[int] = set()  # partition numbers whose state is held here
        self._checkpoint_offsets: dict[int, dict[str, int]] = {}
        self._saved: dict[int, dict[str, int]] = {}  # offsets of the last checkpoint written
        # (topic, partition) lists per assignment/revocation callback (tests, logs).
        self.assignments: list[tuple[str, list[tuple[str, int]]]] = []
        # Optional callback(kafka timestamps ms, online-write-done ms) per batch (benchmarks).
        self.latency_observer: Callable[[list[int], float], None] | None = None
        self._kill_after = kill_after_from_env()  # test hook, read once
        self._online_batches = 0
        self._raw: dict[tuple[str, int, int], Any] = {}  # this batch's messages by coordinates
        self._dead: DeadLetters | None = None
        self.retry_policy = retry.RetryPolicy(
            initial=config.backoff_initial,
            maximum=config.backoff_max,
            max_seconds=config.retry_max_seconds,
        )

    def stop(self) -> None:
        self._stop = True

    # ---- partition assignment (incremental: cooperative-sticky) --------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Called with the partitions ADDED to this member; the client assigns them afterwards."""
        added = [(tp.topic, tp.partition) for tp in partitions]
        self.assignments.append(("assign", added))
        for tp in partitions:
            self._rebuild(tp.topic, tp.partition)
            self._assigned.add((tp.topic, tp.partition))
        logger.info("{}: +{} -> {}", self.processor.name, added, sorted(self._assigned))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Called with the partitions REMOVED from this member: commit, checkpoint, drop."""
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        self.assignments.append(("revoke", revoked))
        done = [self._processed.pop(key, None) for key in revoked]
        done = [tp for tp in done if tp is not None]
        if done:  # hand over exactly where this process stopped (fewer redeliveries)
            try:
                consumer.commit(offsets=done, asynchronous=False)
            except Exception as exc:  # noqa: BLE001 - the next owner re-reads: still at-least-once
                logger.warning("{}: commit on revoke failed: {}", self.processor.name, exc)
        for key in revoked:
            self._assigned.discard(key)
        self._drop(revoked, checkpoint=True)
        logger.info("{}: -{} -> {}", self.processor.name, revoked, sorted(self._assigned))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions lost without a clean revoke (session timeout): drop, no commit/checkpoint."""
        lost = [(tp.topic, tp.partition) for tp in partitions]
        self.assignments.append(("lost", lost))
        for key in lost:
            self._processed.pop(key, None)
            self._assigned.discard(key)
        self._drop(lost, checkpoint=False)

    def _drop(self, keys: list[tuple[str, int]], checkpoint: bool) -> None:
        """Checkpoint, then forget, the partition numbers none of whose topics is still held."""
        numbers = {p for _, p in keys} - {p for _, p in self._assigned}
        for p in sorted(numbers):
            if checkpoint and p in self._live:
                self._save_checkpoint(p)
            for topic in self.processor.topics:
                self.processor.forget_partition(topic, p)
                self._positions.pop((topic, p), None)
            self._live.discard(p)
            self._checkpoint_offsets.pop(p, None)
            self._saved.pop(p, None)

    def _save_checkpoint(self, partition: int) -> None:
        if self.checkpoints is None:
            return
        offsets = {t: o for (t, p), o in self._positions.items() if p == partition}
        if not offsets or self._saved.get(partition) == offsets:
            return  # nothing new since the last checkpoint of this partition
        t0 = time.perf_counter()
        try:
            size = self.checkpoints.save(self.processor, partition, offsets)
        except Exception as exc:  # noqa: BLE001 - a missed checkpoint only means a longer replay
            logger.warning("{}: checkpoint of [{}] failed: {}", self.processor.name, partition, exc)
            return
        self._saved[partition] = offsets
        self.summary.checkpoints += 1
        logger.debug(
            "{}: checkpoint [{}] at {} ({} bytes, {:.3f}s)",
            self.processor.name,
            partition,
            offsets,
            size,
            time.perf_counter() - t0,
        )

    def _track_positions(self) -> None:
        for key, tp in self._processed.items():
            self._positions[key] = tp.offset
            self._live.add(key[1])

    def _after_commit(self, n_messages: int) -> None:
        """Checkpoint hook after a batch's offset commit: every N seconds / M messages."""
        self._track_positions()
        if self.checkpoints is None or not self.checkpoints.due(n_messages):
            return
        for p in sorted(self._live):
            self._save_checkpoint(p)
        self.checkpoints.mark_saved()

    def _bootstrap_events(self, events: Sequence[Event]) -> None:
        """Fold offline history for symbols the processor has no state for (before their bar)."""
        if self.bootstrap is not None:
            self.summary.bootstrapped_bars += self.bootstrap.before_process(self.processor, events)

    def _rebuild(self, topic: str, partition: int) -> None:
        """State of a newly assigned partition: its checkpoint + replay up to the committed offset.

        Replay starts at the checkpoint's offset; without a (usable) checkpoint a processor with a
        bootstrap source starts empty (new symbols bootstrap from history as they come), one
        without replays from the low watermark. Either replay is bounded by `rebuild_timeout`.
        """
        from confluent_kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        committed = self._consumer.committed([tp], timeout=10)[0].offset
        if partition not in self._live and self.checkpoints is not None:
            ckpt = self.checkpoints.load(partition)
            if ckpt is not None:
                restore_partition_state(self.processor, partition, ckpt.state)
                self._checkpoint_offsets[partition] = ckpt.offsets
                self._saved[partition] = dict(ckpt.offsets)
                self.summary.restored += 1
                logger.info(
                    "{}: restored [{}] from checkpoint at {}",
                    self.processor.name,
                    partition,
                    ckpt.offsets,
                )
        self._live.add(partition)
        if committed is None or committed < 0:
            return
        offsets = self._checkpoint_offsets.get(partition, {})
        self._positions[(topic, partition)] = max(committed, offsets.get(topic, -1))
        low, _high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        can_bootstrap = self.bootstrap is not None and hasattr(self.processor, "last_bar_ms")
        if topic in offsets:
            start = offsets[topic]
            if start < low:  # retention dropped messages the state has not seen: unusable
                logger.error(
                    "{}: checkpoint of {}[{}] at offset {} is older than the topic's first "
                    "offset {}: dropped",
                    self.processor.name,
                    topic,
                    partition,
                    start,
                    low,
                )
                self.processor.forget_partition(topic, partition)
                start = None if can_bootstrap else low
        else:
            start = None if can_bootstrap else low
        if start is None or start >= committed:
            return
        # Up to the committed offset, not the high watermark: a broker may report a stale one
        # (seen on Tansu mid-run); a committed offset beyond the partition's end times out loudly.
        self._replay(topic, partition, start, committed)

    def _replay(self, topic: str, partition: int, start: int, end: int) -> None:
        """Warm the processor with [start, end) of one partition, within `rebuild_timeout`."""
        from confluent_kafka import Consumer, TopicPartition

        cfg = self.config
        reader = Consumer(
            consumer_config(
                cfg.bootstrap,
                f"{cfg.group}.rebuild",
                **cfg.consumer_overrides,
            )
        )
        t0 = time.monotonic()
        replayed = 0
        position = start
        try:
            reader.assign([TopicPartition(topic, partition, start)])
            while position < end:
                if time.monotonic() - t0 > cfg.rebuild_timeout:
                    raise RebuildError(
                        f"{self.processor.name}: rebuilding {topic}[{partition}] stopped at offset "
                        f"{position} of [{start}, {end}) after {cfg.rebuild_timeout:.0f}s "
                        "(broker down or partition unreadable)"
                    )
                msgs = reader.consume(num_messages=cfg.batch_size, timeout=0.5)
                events: list[Event] = []
                for m in msgs:
                    if m.error():
                        continue  # partition EOF or a transient error: the deadline bounds it
                    position = max(position, m.offset() + 1)
                    if m.offset() >= end:
                        continue
                    try:
                        value = decode(topic, m.value())
                        check_key(topic, m.key(), value)  # as first processing: never folded
                    except InvalidMessage:
                        continue
                    events.append(Event(topic, partition, m.offset(), value, m.timestamp()[1]))
                if events:
                    self._bootstrap_events(events)
                    self.processor.warm(events)
                    replayed += len(events)
                if not msgs:  # offsets may have gaps (compaction, deleted records)
                    pos = reader.position([TopicPartition(topic, partition)])[0].offset
                    position = max(position, pos)
        finally:
            reader.close()
        self.summary.replayed += replayed
        logger.info(
            "{}: rebuilt {}[{}] from {} events ({}..{}) in {:.2f}s",
            self.processor.name,
            topic,
            partition,
            replayed,
            start,
            end,
            time.monotonic() - t0,
        )

    # ---- one batch -----------------------------------------------------------------------
    def _decode(self, msgs: Sequence[Any], dead: DeadLetters) -> list[Event]:
        events: list[Event] = []
        now_ms = int(time.time() * 1000)
        per_topic: dict[str, int] = {}
        self._raw = {}
        for m in msgs:
            topic = m.topic()
            per_topic[topic] = per_topic.get(topic, 0) + 1
            try:
                value = decode(topic, m.value(), now_ms=now_ms)
            except InvalidMessage as exc:
                dead.send(m, exc.reason, exc.detail, stage="decode")
                continue
            try:
                check_key(topic, m.key(), value)
            except InvalidMessage as exc:
                dead.send(m, exc.reason, exc.detail, stage="validate")
                continue
            self._raw[_coords(topic, m.partition(), m.offset())] = m
            events.append(Event(topic, m.partition(), m.offset(), value, m.timestamp()[1]))
        for topic, n in per_topic.items():
            self.metrics.events_in.labels(self.metrics.job, topic).inc(n)
        return events

    def _with_retry(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` under the one retry policy; every retried attempt is counted."""

        def counted(_exc: BaseException, _delay: float) -> None:
            self.summary.retries += 1
            self.metrics.retries.labels(self.metrics.job).inc()

        return retry.call(
            fn,
            *args,
            what=f"{self.processor.name}: {what}",
            policy=self.retry_policy,
            on_retry=counted,
            should_stop=lambda: self._stop,
            **kwargs,
        )

    def _dead_letter(self, events: Sequence[Event], reason: str, detail: str) -> None:
        assert self._dead is not None
        for e in events:
            m = self._raw.get(_coords(e.topic, e.partition, e.offset))
            if m is not None:
                self._dead.send(m, reason, detail, stage="process")

    def _process(self, events: Sequence[Event]) -> dict[str, ViewRows]:
        """The processor over a batch; if it raises, message by message (the culprit to the DLQ).

        A dead service is not the message's fault: transient and configuration errors propagate.
        """
        try:
            return self.processor.process(events)
        except Exception as exc:  # noqa: BLE001 - classified below
            if retry.classify(exc) != retry.OTHER or len(events) <= 1:
                if retry.classify(exc) != retry.OTHER:
                    raise
                self._dead_letter(events, "processing_error", retry.one_line(exc))
                return {}
            logger.warning(
                "{}: batch of {} failed ({}); isolating message by message",
                self.processor.name,
                len(events),
                retry.one_line(exc),
            )
        parts: dict[str, list[ViewRows]] = {}
        for e in events:
            try:
                out = self.processor.process([e])
            except Exception as exc:  # noqa: BLE001
                if retry.classify(exc) != retry.OTHER:
                    raise
                logger.error(
                    "{}: {}[{}]@{} failed in processing: {}",
                    self.processor.name,
                    e.topic,
                    e.partition,
                    e.offset,
                    retry.one_line(exc),
                )
                self._dead_letter([e], "processing_error", f"{type(exc).__name__}: {exc}")
                continue
            for name, rows in out.items():
                parts.setdefault(name, []).append(rows)
        return {name: ViewRows.concat(rows) for name, rows in parts.items()}

    def _isolating_write(
        self,
        what: str,
        write: Callable[[Any], Any],
        batch: Any,
        entities: Callable[[Any], list[tuple[str, Any]]],
        events: Sequence[Event],
    ) -> tuple[list[Any], set[str]]:
        """`write(batch)` retried under the policy; a non-service failure is retried per entity.

        Returns (the writes' results, the entities whose rows could not be written: their
        messages are dead-lettered as `write_error`).
        """
        try:
            return [self._with_retry(what, write, batch)], set()
        except Exception as exc:  # noqa: BLE001 - classified below
            if retry.classify(exc) != retry.OTHER:
                raise
            logger.warning("{}: {} failed ({}); per entity", self.processor.name, what, exc)
        bad: dict[str, str] = {}
        results: list[Any] = []
        for entity, part in entities(batch):
            try:
                results.append(self._with_retry(what, write, part))
            except Exception as exc:  # noqa: BLE001
                if retry.classify(exc) != retry.OTHER:
                    raise
                bad[entity] = f"{what}: {type(exc).__name__}: {exc}"
        for entity, detail in bad.items():
            culprits = [e for e in events if entity_of(e.topic, e.value) == entity]
            self._dead_letter(culprits, "write_error", detail)
        return results, set(bad)

    def _write(
        self, outputs: dict[str, ViewRows], kafka_ts: list[int], events: Sequence[Event] = ()
    ) -> None:
        failed: dict[str, set[str]] = {}
        for out in self.processor.outputs:
            batch = outputs.get(out.view.name)
            if batch is None or not batch.count:
                continue
            stats, bad = self._isolating_write(
                f"online write {out.view.name}",
                lambda rows, view=out.view: self.writer.write(view, rows),
                batch.latest,
                lambda rows: [(r[0], [r]) for r in rows],
                events,
            )
            failed[out.view.name] = bad
            self.summary.online_written += sum(getattr(st, "written", 0) for st in stats)
            self.summary.rows_out += batch.count
            self.metrics.events_out.labels(self.metrics.job, out.view.name).inc(batch.count)
        if self._kill_after is not None and failed:
            self._online_batches += 1
            if self._online_batches >= self._kill_after:  # test hook: see the module docstring
                logger.warning("{}: {} -> SIGKILL", self.processor.name, FAULT_ENV)
                os.kill(os.getpid(), signal.SIGKILL)
        done_ms = time.time() * 1000
        if self.latency_observer is not None:
            self.latency_observer(kafka_ts, done_ms)
        hist = self.metrics.freshness.labels(self.metrics.job)
        for ts in kafka_ts:
            hist.observe(max(done_ms - ts, 0.0) / 1000)
        if self.offline is not None and self.config.write_offline:
            for out in self.processor.outputs:
                batch = outputs.get(out.view.name)
                if batch is not None and batch.count:
                    frame = batch.frame()
                    key = out.view.join_key
                    bad = failed.get(out.view.name)
                    if bad:  # rows that could not be written online: dead-lettered, not logged
                        frame = frame[~frame[key].isin(bad)]
                    self._isolating_write(
                        f"offline log {out.log_table}",
                        lambda df, out=out: self.offline.append_frame(out.log_table, out.view, df),
                        frame,
                        lambda df, key=key: [(str(k), g) for k, g in df.groupby(key, sort=False)],
                        events,
                    )

    def _commit(self, msgs: Sequence[Any]) -> None:
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            if not m.error():
                key = (m.topic(), m.partition())
                last[key] = max(last.get(key, -1), m.offset())
        if last:
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            # Asynchronous: the writes are already durable; a lost commit only means redelivery,
            # which the stores absorb. The last processed offsets are committed synchronously on a
            # clean shutdown.
            self._consumer.commit(offsets=offsets, asynchronous=True)
            self._processed.update({(tp.topic, tp.partition): tp for tp in offsets})

    def _update_lag(self, force: bool = False) -> int:
        from confluent_kafka import TopicPartition

        now = time.monotonic()
        if not force and now - self._last_lag_check < 1.0:
            return self._lag_total
        self._last_lag_check = now
        total = 0
        assigned = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if not assigned:
            return -1
        positions = self._consumer.position(assigned)
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = {}
        if unknown and not force:  # nothing fetched there yet: no broker round trip mid-stream
            positions = [tp for tp in positions if tp.offset >= 0]
            unknown = []
        if unknown:  # nothing fetched yet on these partitions: measure from the committed offset
            for tp in self._consumer.committed(unknown, timeout=5):
                committed[(tp.topic, tp.partition)] = tp.offset
        for tp in positions:
            # During the run the high watermarks the fetches brought back are enough (cached);
            # the drain check asks the broker.
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=not force)
            if high < 0:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            pos = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            pos = pos if pos >= 0 else low
            lag = max(high - pos, 0)
            total += lag
            self.metrics.lag.labels(self.metrics.job, tp.topic, str(tp.partition)).set(lag)
        self._lag_total = total
        return total

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> LoopSummary:
        from confluent_kafka import Consumer, KafkaError, Producer

        cfg = self.config
        topics = list(self.processor.topics)
        warm_up = getattr(self.processor, "warm_up", None)
        if warm_up is not None:
            warm_up()
        # Everything allocated so far (Feast, pandas, the kernels) lives as long as the job: keep
        # it out of the cyclic GC's scans, which otherwise stall batches as the heap grows.
        gc.collect()
        gc.freeze()
        ensure_topics(cfg.bootstrap, topics + [dlq_topic(t) for t in topics])
        self._consumer = Consumer(
            consumer_config(cfg.bootstrap, cfg.group, **cfg.consumer_overrides)
        )
        import tempfile

        dead = self._dead = DeadLetters(
            Producer(producer_config(cfg.bootstrap, **{"message.max.bytes": DLQ_MAX_BYTES})),
            self.metrics,
            local_dir=cfg.dlq_dir or os.path.join(tempfile.gettempdir(), "finfeast-dlq"),
        )
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        started = time.monotonic()
        last_msg = time.monotonic()
        clean = False
        batch_hist = self.metrics.batch_seconds.labels(self.metrics.job)
        try:
            while not self._stop:
                if cfg.max_seconds and time.monotonic() - started > cfg.max_seconds:
                    break
                msgs = self._consumer.consume(num_messages=cfg.batch_size, timeout=cfg.poll_timeout)
                msgs = [
                    m
                    for m in msgs
                    if not (m.error() and m.error().code() == KafkaError._PARTITION_EOF)
                ]
                for m in msgs:
                    if m.error():
                        logger.warning("{}: consumer error {}", self.processor.name, m.error())
                msgs = [m for m in msgs if not m.error()]
                if not msgs:
                    # Drained = something was consumed, then nothing for a while and no lag.
                    if (
                        cfg.idle_exit_seconds is not None
                        and self._assigned
                        and self.summary.events_in
                    ):
                        if (
                            time.monotonic() - last_msg >= cfg.idle_exit_seconds
                            and self._update_lag(True) == 0
                        ):
                            break
                    continue
                t0 = time.perf_counter()
                last_msg = time.monotonic()
                events = self._decode(msgs, dead)
                self._bootstrap_events(events)
                outputs = self._process(events)
                self._write(outputs, [e.kafka_ts_ms for e in events], events)
                self._with_retry("dead-letter flush", dead.flush)
                self._commit(msgs)
                self._after_commit(len(msgs))
                self.processor.observe(self.metrics)
                elapsed = time.perf_counter() - t0
                batch_hist.observe(elapsed)
                logger.debug("{}: batch of {} in {:.3f}s", self.processor.name, len(msgs), elapsed)
                self.summary.batches += 1
                self.summary.events_in += len(msgs)
                self._update_lag()
                if cfg.max_events and self.summary.events_in >= cfg.max_events:
                    break
            clean = True
        finally:
            self.summary.dlq = dead.count
            self.summary.dlq_by_reason = dict(dead.by_reason)
            self.summary.late = int(self.metrics.total("finfeast_stream_late_events_total"))
            self.summary.seconds = time.monotonic() - started
            try:
                dead.flush(10)
                if clean and self._processed:
                    try:
                        self._consumer.commit(
                            offsets=list(self._processed.values()), asynchronous=False
                        )
                    except Exception as exc:  # noqa: BLE001 - broker gone: redelivery later
                        logger.warning("{}: final commit failed: {}", self.processor.name, exc)
                if clean:  # the next owner restores exactly here
                    self._track_positions()
                    for p in sorted(self._live):
                        self._save_checkpoint(p)
            finally:
                self._consumer.close()
                # drop the DLQ producer now: a producer kept alive past its broker (the embedded
                # one stops after a replay) logs reconnect attempts until it is collected
                self._dead = None
                del dead
        return self.summary
