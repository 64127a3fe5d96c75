"""Dead-letter queue: a bad message goes to `<topic>.dlq` with its reason, whatever its size.

Why: a stream job must keep going on bad input without losing it, and the dead-letter path itself
must never be what stops the job. (A 1.02 MB message is under Apache Kafka's default broker limit
of 1,048,588 bytes but over librdkafka's default producer `message.max.bytes` of 1,000,000: sending
it unchanged raised `MSG_SIZE_TOO_LARGE`, and every restart re-read it and died again.)

The contract (docs/streaming.md "Dead-letter contract"):
- Key and value are the original bytes, truncated to what the DLQ producer accepts
  (`max_bytes` minus key, headers and a margin); a key over 1 KiB is truncated too.
- Headers: `error.reason` (stable code, also the metric label), `error.detail` (<= 1000 chars),
  `error.stage` (`decode`, `validate` or `process`), `source.topic`, `source.partition`,
  `source.offset`, `original.size` (value bytes), `original.sha256` (hex of the whole value),
  `original.key_size`, `payload.truncated` (`true`/`false`).
- Where even that fails (the produce raises, or the broker rejects the delivery, e.g. a topic
  with a smaller `max.message.bytes`), the message is recorded locally: one JSON line in
  `<local_dir>/<topic>.dlq.jsonl` (reason, coordinates, size, sha256, why the DLQ failed) and the
  whole value in `<local_dir>/payloads/<sha256>.bin`; counted in
  `finfeast_stream_dlq_local_total{job,topic,reason}`.
- The job flushes the DLQ producer before committing offsets, so a message is never committed
  unless it was processed, dead-lettered or recorded locally.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from finfeast.errors import ServiceUnavailable
from finfeast.retry import one_line
from stream_jobs.schemas import dlq_topic

# librdkafka's default producer `message.max.bytes`; the DLQ producer is configured with it.
DLQ_MAX_BYTES = 1_000_000
# librdkafka adds ~40 bytes of record overhead to key + value + headers; keep well clear of it.
_MARGIN = 1024
_MAX_KEY = 1024
_DETAIL = 1000


@dataclass(frozen=True)
class _Letter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    detail: str
    stage: str
    sha256: str


class DeadLetters:
    """Sends rejected messages to their topic's DLQ (or a local file) and counts them."""

    def __init__(
        self,
        producer: Any,
        metrics: Any = None,
        local_dir: Path | str | None = None,
        max_bytes: int = DLQ_MAX_BYTES,
    ) -> None:
        self.producer = producer
        self.metrics = metrics
        self.local_dir = Path(local_dir) if local_dir is not None else None
        self.max_bytes = max_bytes
        self.count = 0
        self.local_count = 0
        self.by_reason: dict[str, int] = {}
        self._lock = threading.Lock()

    # ---- sending -------------------------------------------------------------------------
    def send(self, message: Any, reason: str, detail: str, stage: str = "decode") -> None:
        """Dead-letter one consumed message; never raises for the message's size or content."""
        value = message.value() or b""
        key = message.key()
        letter = _Letter(
            message.topic(),
            int(message.partition()),
            int(message.offset()),
            key,
            value,
            reason,
            detail,
            stage,
            hashlib.sha256(value).hexdigest(),
        )
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self.metrics is not None:
            self.metrics.dlq.labels(self.metrics.job, letter.topic, reason).inc()
        out_key = key[:_MAX_KEY] if key is not None else None
        headers = [
            ("error.reason", reason.encode()),
            ("error.detail", detail[:_DETAIL].encode("utf-8", "replace")),
            ("error.stage", stage.encode()),
            ("source.topic", letter.topic.encode()),
            ("source.partition", str(letter.partition).encode()),
            ("source.offset", str(letter.offset).encode()),
            ("original.size", str(len(value)).encode()),
            ("original.sha256", letter.sha256.encode()),
            ("original.key_size", str(len(key) if key is not None else -1).encode()),
        ]
        used = len(out_key or b"") + sum(len(k) + len(v) for k, v in headers) + 32
        budget = max(self.max_bytes - used - _MARGIN, 0)
        truncated = len(value) > budget or (key is not None and len(key) > _MAX_KEY)
        headers.append(("payload.truncated", b"true" if truncated else b"false"))
        try:
            self._produce(dlq_topic(letter.topic), out_key, value[:budget], headers, letter)
        except Exception as exc:  # noqa: BLE001 - any refusal: keep the message locally instead
            self._local(letter, f"dlq produce failed: {one_line(exc)}")

    def _produce(
        self, topic: str, key: bytes | None, value: bytes, headers: list, letter: _Letter
    ) -> None:
        callback = functools.partial(self._delivered, letter)
        for _ in range(50):
            try:
                self.producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=callback
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain, then again
                self.producer.poll(0.1)
        else:
            raise BufferError("DLQ producer queue stayed full")
        self.producer.poll(0)

    def _delivered(self, letter: _Letter, err: Any, _msg: Any) -> None:
        if err is not None:  # the broker refused it (size, topic config, timeout)
            self._local(letter, f"dlq delivery failed: {err}")

    # ---- the local fallback --------------------------------------------------------------
    def _local(self, letter: _Letter, failure: str) -> None:
        logger.error(
            "dead letter of {}[{}]@{} ({}) kept locally: {}",
            letter.topic,
            letter.partition,
            letter.offset,
            letter.reason,
            failure,
        )
        with self._lock:
            self.local_count += 1
            if self.metrics is not None:
                self.metrics.dlq_local.labels(self.metrics.job, letter.topic, letter.reason).inc()
            if self.local_dir is None:
                return
            payloads = self.local_dir / "payloads"
            payloads.mkdir(parents=True, exist_ok=True)
            blob = payloads / f"{letter.sha256}.bin"
            if not blob.exists():
                tmp = blob.with_suffix(".tmp")
                tmp.write_bytes(letter.value)
                tmp.replace(blob)
            record = {
                "recorded_at_ms": int(time.time() * 1000),
                "reason": letter.reason,
                "detail": letter.detail[:_DETAIL],
                "stage": letter.stage,
                "source_topic": letter.topic,
                "source_partition": letter.partition,
                "source_offset": letter.offset,
                "original_size": len(letter.value),
                "original_sha256": letter.sha256,
                "key_b64": base64.b64encode(letter.key[:_MAX_KEY]).decode()
                if letter.key is not None
                else None,
                "dlq_failure": failure,
                "payload_file": str(blob),
            }
            path = self.local_dir / f"{dlq_topic(letter.topic)}.jsonl"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged or kept locally (before a commit)."""
        remaining = self.producer.flush(timeout)
        if remaining:
            raise ServiceUnavailable(
                f"{remaining} dead letters not acknowledged by Kafka within {timeout}s"
            )
