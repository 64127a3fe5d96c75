"""The at-least-once consumer loop shared by the stream jobs.

One batch = poll up to `batch_size` messages -> decode and validate each, including the key
(bad ones to the DLQ) -> the job's processor updates its per-entity state and returns feature rows
(a batch that raises is retried message by message; the message that raises is dead-lettered as
`processing_error`) -> write the rows to the online store (fast writer) -> flush the DLQ -> hand
the rows to the offline-log writer thread (`stream_jobs.log_writer`) and go on with the next
batch. A batch's offsets are committed once BOTH its online write and its offline-log append are
durable (`_reap`, in batch order; the log writer holds at most `log_max_pending` batches, beyond
that the consumer waits). A write that fails because a service is down is retried with the one
retry policy (`finfeast.retry`: backoff, bounded) and the offsets are not committed until it
succeeds, so a crash at any point means redelivery, never loss; redelivered rows are harmless
because both stores are idempotent by (entity, event time). A write that fails for one entity's
rows (not a dead service) dead-letters that entity's messages as `write_error`. Before offsets are
committed on revoke, on shutdown and before a checkpoint, the log writer is drained, so a
checkpoint's offsets are exactly the state's; lost partitions' pending offsets are never committed.

Test hooks (`FINFEAST_FAULT`, read once when the loop is built):
`kill_after_online_write:N` SIGKILLs the process right after the N-th batch's online write, before
that batch reaches the offline log writer and before its offsets are committed (the hook first
drains the writer, so batches 1..N-1 are logged and their commits sent, as they were when the log
was written inline); `kill_before_log_write:N` SIGKILLs it on the log writer thread just
before its N-th append, with every batch it holds written online and none committed. The fault
tests use them to prove that the redelivery is idempotent.

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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
from loguru import logger

from finfeast import retry
from finfeast.errors import ConfigurationError, FinfeastError
from stream_jobs.bootstrap import Bootstrapper
from stream_jobs.broker import consumer_config, ensure_topics, producer_config
from stream_jobs.checkpoint import Checkpointer, restore_partition_state
from stream_jobs.dead_letter import DLQ_MAX_BYTES, DeadLetters
from stream_jobs.log_writer import LogPart, LogResult, LogWriter
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import OfflineLog
from stream_jobs.online_writer import OnlineWriter, ViewSpec
from stream_jobs.schemas import InvalidMessage, check_key, decode, dlq_topic, entity_of
from stream_jobs.view_rows import ViewRows


class Event(NamedTuple):
    """A decoded, valid message with its Kafka coordinates (a named tuple: one is built per
    message, and a frozen dataclass's `__init__` cost more than its decode)."""

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
    # Batches handed to the offline-log writer thread and not yet written; beyond it the consumer
    # waits (backpressure). Waiting batches are appended together (one COPY / part per table).
    log_max_pending: int = 8
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
    log_writes: int = 0  # offline log appends (one per table per coalesced group of batches)
    log_writes_direct: int = 0  # of which binary COPYs straight from the processor's frames

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
FAULTS = ("kill_after_online_write", "kill_before_log_write")


def fault_from_env() -> tuple[str, int] | None:
    """(name, N) of the test hook `FINFEAST_FAULT=<fault>:N` (None when unset)."""
    text = os.environ.get(FAULT_ENV, "").strip()
    if not text:
        return None
    name, _, count = text.partition(":")
    if name not in FAULTS or not count.isdigit() or int(count) < 1:
        raise ConfigurationError(
            f"{FAULT_ENV}={text!r}: the faults are kill_after_online_write:N and "
            "kill_before_log_write:N (N >= 1)"
        )
    return name, int(count)


def kill_after_from_env() -> int | None:
    """N of `FINFEAST_FAULT=kill_after_online_write:N` (None when unset or another fault)."""
    fault = fault_from_env()
    return fault[1] if fault and fault[0] == "kill_after_online_write" else None


def _sigkill(job: str, why: str) -> None:
    logger.warning("{}: {} {} -> SIGKILL", job, FAULT_ENV, why)
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Pending:
    """A batch whose offsets wait for its offline-log append (consumer thread only)."""

    seq: int
    offsets: dict[tuple[str, int], int]  # next offset to read per partition
    events: Sequence[Event]
    raw: dict[tuple[str, int, int], Any]


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
        # Optional callback(kafka timestamps ms, log-durable-and-committed ms) per batch (benchmarks).
        self.log_observer: Callable[[list[int], float], None] | None = None
        fault = fault_from_env()  # test hooks, read once
        self._kill_after = fault[1] if fault and fault[0] == "kill_after_online_write" else None
        self._kill_before_log = fault[1] if fault and fault[0] == "kill_before_log_write" else None
        self._online_batches = 0
        self._log: LogWriter | None = None  # the offline-log writer thread (while running)
        self._pending: list[_Pending] = []  # batches handed to it, in order, offsets uncommitted
        self._counts_lock = threading.Lock()  # summary counts the writer threads update
        self._raw: dict[tuple[str, int, int], Any] = {}  # this batch's messages by coordinates
        self._dead: DeadLetters | None = None
        # An exception raised inside a rebalance callback, carried out by `_guarded` and raised
        # from the loop; `_failed` then keeps the closing revoke from checkpointing.
        self._callback_error: BaseException | None = None
        self._failed = False
        self.retry_policy = retry.RetryPolicy(
            initial=config.backoff_initial,
            maximum=config.backoff_max,
            max_seconds=config.retry_max_seconds,
        )

    def stop(self) -> None:
        self._stop = True

    # ---- partition assignment (incremental: cooperative-sticky) --------------------------
    def _guarded(self, callback: Callable[[Any, list[Any]], None]) -> Callable[..., None]:
        """A rebalance callback that never lets an exception cross into librdkafka.

        confluent-kafka re-raises an exception from a rebalance callback out of `consume()` as a
        malformed object (its type is `KafkaError`, not an exception class: no `except` clause
        matches it and the traceback machinery cannot print it; seen when a broker lookup in a
        takeover timed out). So the callback's exception is kept here and `_raise_callback_error`
        raises it, intact, from the loop; the job then ends without checkpointing (`_failed`).
        """

        def run(consumer: Any, partitions: list[Any]) -> None:
            try:
                callback(consumer, partitions)
            except BaseException as exc:  # noqa: BLE001 - carried out, raised by the loop
                logger.error(
                    "{}: {} failed: {}", self.processor.name, callback.__name__, retry.one_line(exc)
                )
                self._failed = True
                if self._callback_error is None:
                    self._callback_error = exc

        return run

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            exc, self._callback_error = self._callback_error, None
            raise exc

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
        self._drain()  # every processed batch's log append durable, its offsets committed
        done = [self._processed.pop(key, None) for key in revoked]
        done = [tp for tp in done if tp is not None]
        if done:  # hand over exactly where this process stopped (fewer redeliveries)
            try:
                consumer.commit(offsets=done, asynchronous=False)
            except Exception as exc:  # noqa: BLE001 - the next owner re-reads: still at-least-once
                logger.warning("{}: commit on revoke failed: {}", self.processor.name, exc)
        for key in revoked:
            self._assigned.discard(key)
        # A failed job (a rebuild that did not finish, an unclean exit) hands over through the
        # committed offsets only: its state may not be that of its positions.
        self._drop(revoked, checkpoint=not self._failed)
        logger.info("{}: -{} -> {}", self.processor.name, revoked, sorted(self._assigned))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions lost without a clean revoke (session timeout): drop, no commit/checkpoint."""
        lost = [(tp.topic, tp.partition) for tp in partitions]
        self.assignments.append(("lost", lost))
        for key in lost:
            self._processed.pop(key, None)
            self._assigned.discard(key)
            for pending in self._pending:  # their rows may still be logged; never commit them
                pending.offsets.pop(key, None)
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

    def _save_checkpoint(self, partition: int, background: bool = False) -> None:
        """Checkpoint one partition at its current offsets: now (revoke, shutdown: the next owner
        must find it), or with the write on the checkpointer's thread (`background`, the
        periodic rounds: the batch waits for the state capture only)."""
        if self.checkpoints is None:
            return
        if not background:  # the next owner must find it: a write in flight lands first
            self.checkpoints.flush()
        offsets = {t: o for (t, p), o in self._positions.items() if p == partition}
        if not offsets or self._saved.get(partition) == offsets:
            return  # nothing new since the last checkpoint of this partition
        t0 = time.perf_counter()
        if background:
            # marked before the write starts: a failed write (on the checkpointer's thread, maybe
            # before `save_async` returns) unmarks it in `_checkpoint_done`
            self._saved[partition] = offsets
            try:
                self.checkpoints.save_async(
                    self.processor,
                    partition,
                    offsets,
                    done=lambda size, exc: self._checkpoint_done(partition, offsets, size, exc),
                )
            except Exception as exc:  # noqa: BLE001 - a missed checkpoint only means a longer replay
                self._saved.pop(partition, None)
                logger.warning(
                    "{}: checkpoint of [{}] failed: {}", self.processor.name, partition, exc
                )
            return
        try:
            size = self.checkpoints.save(self.processor, partition, offsets)
        except Exception as exc:  # noqa: BLE001 - a missed checkpoint only means a longer replay
            logger.warning("{}: checkpoint of [{}] failed: {}", self.processor.name, partition, exc)
            return
        self._saved[partition] = offsets
        self._checkpoint_done(partition, offsets, size, None, time.perf_counter() - t0)

    def _checkpoint_done(
        self,
        partition: int,
        offsets: dict[str, int],
        size: int,
        exc: BaseException | None,
        seconds: float | None = None,
    ) -> None:
        """A checkpoint write finished (on the checkpointer's thread for background ones)."""
        if exc is not None:
            if self._saved.get(partition) == offsets:
                self._saved.pop(partition, None)  # so the next round (or the revoke) writes it
            return
        with self._counts_lock:
            self.summary.checkpoints += 1
        logger.debug(
            "{}: checkpoint [{}] at {} ({} bytes{})",
            self.processor.name,
            partition,
            offsets,
            size,
            "" if seconds is None else f", {seconds:.3f}s",
        )

    def _track_positions(self) -> None:
        for key, tp in self._processed.items():
            self._positions[key] = tp.offset
            self._live.add(key[1])

    def _after_batch(self, n_messages: int) -> None:
        """Checkpoint hook after a batch: every N seconds / M messages, after draining the log
        writer (a checkpoint's offsets must be those of the state it holds, all committed)."""
        if self.checkpoints is None or not self.checkpoints.due(n_messages):
            return
        self._drain()
        self.checkpoints.flush()  # the previous round's writes: at most one round in flight
        for p in sorted(self._live):
            self._save_checkpoint(p, background=True)
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
        # Broker lookups in a takeover run while the group rebalances: on a loaded broker they
        # can time out, which the retry policy absorbs (bounded; then ServiceUnavailable).
        committed = self._with_retry(
            f"committed offset of {topic}[{partition}]", self._consumer.committed, [tp], timeout=10
        )[0].offset
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
        low, _high = self._with_retry(
            f"watermarks of {topic}[{partition}]",
            self._consumer.get_watermark_offsets,
            tp,
            timeout=10,
            cached=False,
        )
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
        raw = self._raw = {}
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
            partition, offset = m.partition(), m.offset()
            raw[_coords(topic, partition, offset)] = m
            events.append(Event(topic, partition, offset, value, m.timestamp()[1]))
        for topic, n in per_topic.items():
            self.metrics.events_in.labels(self.metrics.job, topic).inc(n)
        return events

    def _with_retry(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` under the one retry policy; every retried attempt is counted."""

        def counted(_exc: BaseException, _delay: float) -> None:
            with self._counts_lock:  # the log writer thread retries too
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

    def _dead_letter(
        self,
        events: Sequence[Event],
        reason: str,
        detail: str,
        raw: dict[tuple[str, int, int], Any] | None = None,
    ) -> None:
        assert self._dead is not None
        raw = self._raw if raw is None else raw
        for e in events:
            m = raw.get(_coords(e.topic, e.partition, e.offset))
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
    ) -> list[LogPart]:
        """The online write of a batch (synchronous); the batch's offline-log parts to hand on."""
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
                self._drain()  # batches before this one logged and committed, as it documents
                _sigkill(self.processor.name, f"after online write {self._online_batches}")
        done_ms = time.time() * 1000
        if self.latency_observer is not None:
            self.latency_observer(kafka_ts, done_ms)
        ages = done_ms - np.fromiter(kafka_ts, dtype=np.float64, count=len(kafka_ts))
        self.metrics.freshness.labels(self.metrics.job).observe_many(np.maximum(ages, 0.0) / 1000)
        parts: list[LogPart] = []
        if self.offline is not None and self.config.write_offline:
            for out in self.processor.outputs:
                batch = outputs.get(out.view.name)
                if batch is not None and batch.count:
                    # rows that could not be written online are dead-lettered, not logged; the
                    # frame itself is built on the writer thread
                    parts.append(
                        LogPart(
                            out.log_table,
                            out.view,
                            batch.frame,
                            frozenset(failed.get(out.view.name) or ()),
                            getattr(batch, "source", None),
                        )
                    )
        return parts

    def _append_log(self, table: str, view: ViewSpec, df: Any) -> Any:
        assert self.offline is not None
        return self.offline.append_frame(table, view, df)

    def _start_log_writer(self) -> None:
        if self.offline is None or not self.config.write_offline:
            return

        def before_write(n: int) -> None:  # test hook: see the module docstring
            if self._kill_before_log is not None and n >= self._kill_before_log:
                _sigkill(self.processor.name, f"before log write {n}")

        self._log = LogWriter(
            self._append_log,
            self._with_retry,
            append_sources=getattr(self.offline, "append_sources", None),
            max_pending=self.config.log_max_pending,
            name=f"{self.processor.name}-offline-log",
            before_write=before_write if self._kill_before_log is not None else None,
        )

    def _hand_over(
        self, msgs: Sequence[Any], events: Sequence[Event], parts: list[LogPart]
    ) -> None:
        """After a batch's online write and DLQ flush: commit now (no log rows) or once the log
        writer has appended its rows (`_reap`). Blocks while the writer holds too many batches."""
        offsets: dict[tuple[str, int], int] = {}
        for m in msgs:
            if not m.error():
                key = (m.topic(), m.partition())
                offsets[key] = max(offsets.get(key, 0), m.offset() + 1)
        if self._log is None or (not parts and not self._pending):
            self._commit_offsets(offsets)
            return
        seq = self._log.submit(parts)  # an empty batch still waits its turn: order of commits
        self._pending.append(_Pending(seq, offsets, events, self._raw))

    def _reap(self, results: list[LogResult] | None = None) -> None:
        """Commit, in batch order, the offsets of the batches the log writer has made durable
        (after dead-lettering and flushing the messages of entities the log refused)."""
        if self._log is None:
            return
        done = self._log.results() if results is None else results
        if not done:
            return
        finished = {r.seq: r for r in done}
        offsets: dict[tuple[str, int], int] = {}
        letters = False
        while self._pending and self._pending[0].seq in finished:
            pending = self._pending.pop(0)
            result = finished[pending.seq]
            for entity, detail in result.bad.items():
                culprits = [e for e in pending.events if entity_of(e.topic, e.value) == entity]
                if culprits:
                    self._dead_letter(culprits, "write_error", detail, raw=pending.raw)
                    letters = True
            for key, off in pending.offsets.items():
                offsets[key] = max(offsets.get(key, 0), off)
            if self.log_observer is not None:
                self.log_observer([e.kafka_ts_ms for e in pending.events], time.time() * 1000)
        self.summary.log_writes = self._log.writes
        self.summary.log_writes_direct = self._log.direct
        if letters:
            assert self._dead is not None
            self._with_retry("dead-letter flush", self._dead.flush)
        self._commit_offsets(offsets)

    def _drain(self) -> None:
        """Wait for every batch handed to the log writer, then commit their offsets."""
        if self._log is not None and self._pending:
            self._reap(self._log.drain())

    def _commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import TopicPartition

        # Only partitions still assigned: a lost one's offsets belong to its new owner now.
        keep = [
            TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self._assigned
        ]
        if keep:
            # Asynchronous: the writes are already durable; a lost commit only means redelivery,
            # which the stores absorb. The last processed offsets are committed synchronously on
            # revoke and on a clean shutdown.
            try:
                self._consumer.commit(offsets=keep, asynchronous=True)
            except Exception as exc:  # noqa: BLE001 - the next commit (or the revoke's) covers it
                if retry.classify(exc) == retry.CONFIG:
                    raise
                logger.warning("{}: commit failed: {}", self.processor.name, retry.one_line(exc))
            self._processed.update({(tp.topic, tp.partition): tp for tp in keep})
        self._track_positions()

    def _update_lag(self, force: bool = False) -> int:
        """Total lag of the assigned partitions (-1: unknown), set in the lag gauges.

        Lag is a measurement: a broker lookup that times out (a loaded broker mid-rebalance)
        leaves it unknown for this round, never stops the job; the idle exit waits for a known 0.
        """
        now = time.monotonic()
        if not force and now - self._last_lag_check < 1.0:
            return self._lag_total
        self._last_lag_check = now
        try:
            return self._measure_lag(force)
        except Exception as exc:  # noqa: BLE001 - classified: only transient errors are absorbed
            if retry.classify(exc) != retry.TRANSIENT:
                raise
            logger.debug("{}: lag unknown this round: {}", self.processor.name, retry.one_line(exc))
            return -1

    def _measure_lag(self, force: bool) -> int:
        from confluent_kafka import TopicPartition

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
            topics,
            on_assign=self._guarded(self._on_assign),
            on_revoke=self._guarded(self._on_revoke),
            on_lost=self._guarded(self._on_lost),
        )
        self._start_log_writer()
        started = time.monotonic()
        last_msg = time.monotonic()
        clean = False
        batch_hist = self.metrics.batch_seconds.labels(self.metrics.job)
        try:
            while not self._stop:
                if cfg.max_seconds and time.monotonic() - started > cfg.max_seconds:
                    break
                self._reap()  # batches the log writer finished: commit their offsets
                msgs = self._consumer.consume(num_messages=cfg.batch_size, timeout=cfg.poll_timeout)
                self._raise_callback_error()  # a rebalance callback that failed fails the job
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
                parts = self._write(outputs, [e.kafka_ts_ms for e in events], events)
                self._with_retry("dead-letter flush", dead.flush)
                self._hand_over(msgs, events, parts)
                self._after_batch(len(msgs))
                self.processor.observe(self.metrics)
                elapsed = time.perf_counter() - t0
                batch_hist.observe(elapsed)
                logger.debug("{}: batch of {} in {:.3f}s", self.processor.name, len(msgs), elapsed)
                self.summary.batches += 1
                self.summary.events_in += len(msgs)
                self._update_lag()
                if cfg.max_events and self.summary.events_in >= cfg.max_events:
                    break
            self._drain()  # the last batches' log appends, then their offsets
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
                if self.checkpoints is not None:  # a background write in flight completes
                    self.checkpoints.close()
                if self._log is not None:  # unclean: whatever it holds is never committed
                    if not clean:
                        self._stop = True  # ends the writer's retries
                    self._log.close()
                    self.summary.log_writes = self._log.writes
                    self.summary.log_writes_direct = self._log.direct
                    self._log = None
                self._pending = []
                # unclean: the closing revoke checkpoints nothing (the state may be ahead of or
                # behind its positions); a failure inside it is logged by `_guarded`, not raised
                self._failed = self._failed or not clean
                self._consumer.close()
                self._callback_error = None
                # drop the DLQ producer now: a producer kept alive past its broker (the embedded
                # one stops after a replay) logs reconnect attempts until it is collected
                self._dead = None
                del dead
        return self.summary
