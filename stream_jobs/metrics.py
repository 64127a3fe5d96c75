"""Prometheus metrics of a stream job, served on `/metrics` at a configurable port.

Why a registry per job: tests and `finfeast run` may host several jobs in one process; each gets
its own `CollectorRegistry` so counters never mix. Labels stay low-cardinality (job, topic,
reason, view, partition).

| metric | type | meaning |
|---|---|---|
| finfeast_stream_events_in_total{job,topic} | counter | messages consumed |
| finfeast_stream_events_out_total{job,view} | counter | feature rows written to the online store |
| finfeast_stream_dlq_total{job,topic,reason} | counter | messages sent to `<topic>.dlq` |
| finfeast_stream_late_events_total{job,topic} | counter | events at or before the entity's last event time (skipped) |
| finfeast_stream_write_retries_total{job} | counter | online/offline write attempts that failed and were retried |
| finfeast_stream_batch_seconds{job} | histogram | poll-to-commit processing time of a batch |
| finfeast_stream_event_to_online_seconds{job} | histogram | Kafka message timestamp -> online write done (freshness) |
| finfeast_stream_consumer_lag{job,topic,partition} | gauge | high watermark - position |
| finfeast_stream_scored_total / finfeast_stream_anomalies_total{job} | counter | anomaly rate = anomalies / scored |
| finfeast_stream_anomaly_rate{job} | gauge | anomalies / scored since start |
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class JobMetrics:
    """The metric objects of one job, in their own registry."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "finfeast_stream_events_in", "Messages consumed", ["job", "topic"], registry=r
        )
        self.events_out = Counter(
            "finfeast_stream_events_out", "Feature rows written online", ["job", "view"], registry=r
        )
        self.dlq = Counter(
            "finfeast_stream_dlq", "Messages dead-lettered", ["job", "topic", "reason"], registry=r
        )
        self.late = Counter(
            "finfeast_stream_late_events",
            "Late or replayed events skipped",
            ["job", "topic"],
            registry=r,
        )
        self.retries = Counter(
            "finfeast_stream_write_retries", "Write attempts retried", ["job"], registry=r
        )
        self.batch_seconds = Histogram(
            "finfeast_stream_batch_seconds",
            "Batch processing time (poll to commit)",
            ["job"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "finfeast_stream_event_to_online_seconds",
            "Message timestamp to online write",
            ["job"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "finfeast_stream_consumer_lag",
            "High watermark minus position",
            ["job", "topic", "partition"],
            registry=r,
        )
        self.scored = Counter(
            "finfeast_stream_scored", "Bars scored by the anomaly model", ["job"], registry=r
        )
        self.anomalies = Counter(
            "finfeast_stream_anomalies", "Bars flagged anomalous", ["job"], registry=r
        )
        self.anomaly_rate = Gauge(
            "finfeast_stream_anomaly_rate", "Anomalies / scored since start", ["job"], registry=r
        )
        self._server: Any = None

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Start `/metrics` on `port` (0 = a free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and summaries)."""
        got = self.registry.get_sample_value(name, {"job": self.job, **labels})
        return float(got or 0.0)

    def total(self, name: str) -> float:
        """Sum of a sample over all label values of this job."""
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and sample.labels.get("job") == self.job:
                    total += sample.value
        return total
