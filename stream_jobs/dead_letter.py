"""Dead-letter queue: a bad message goes to `<topic>.dlq` with its reason and its original bytes.

Why: a stream job must keep going on bad input without losing it. The DLQ message keeps the
original key and value unchanged and carries the failure in headers (`error.reason`,
`error.detail`, `source.topic`, `source.partition`, `source.offset`), so it can be inspected and
replayed after a fix. The job flushes the DLQ producer before committing offsets, so a message is
never committed unless it was either processed or dead-lettered.
"""

from __future__ import annotations

from typing import Any

from stream_jobs.schemas import dlq_topic


class DeadLetters:
    """Sends rejected messages to their topic's DLQ and counts them."""

    def __init__(self, producer: Any, metrics: Any = None) -> None:
        self.producer = producer
        self.metrics = metrics
        self.count = 0
        self.by_reason: dict[str, int] = {}

    def send(self, message: Any, reason: str, detail: str) -> None:
        topic = message.topic()
        headers = [
            ("error.reason", reason.encode()),
            ("error.detail", detail[:1000].encode()),
            ("source.topic", topic.encode()),
            ("source.partition", str(message.partition()).encode()),
            ("source.offset", str(message.offset()).encode()),
        ]
        self.producer.produce(
            dlq_topic(topic), key=message.key(), value=message.value(), headers=headers
        )
        self.producer.poll(0)
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self.metrics is not None:
            self.metrics.dlq.labels(self.metrics.job, topic, reason).inc()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged by the broker (before a commit)."""
        remaining = self.producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} dead letters not acknowledged within {timeout}s")
