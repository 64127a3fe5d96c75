"""Prometheus metrics of a stream job, served on `/metrics` at a configurable port.

Why a registry per job: tests and `finfeast run` may host several jobs in one process; each gets
its own `CollectorRegistry` so counters never mix. Labels stay low-cardinality (job, topic,
reason, view, partition).

| metric | type | meaning |
|---|---|---|
| finfeast_stream_events_in_total{job,topic} | counter | messages consumed |
| finfeast_stream_events_out_total{job,view} | counter | feature rows written to the online store |
| finfeast_stream_dlq_total{job,topic,reason} | counter | messages dead-lettered (to `<topic>.dlq`, or locally when that fails) |
| finfeast_stream_dlq_local_total{job,topic,reason} | counter | dead letters the DLQ refused, kept in the job's local `dlq/` folder |
| finfeast_stream_late_events_total{job,topic} | counter | events at or before the entity's last event time (skipped) |
| finfeast_stream_write_retries_total{job} | counter | online/offline write attempts that failed and were retried |
| finfeast_stream_batch_seconds{job} | histogram | poll-to-commit processing time of a batch |
| finfeast_stream_event_to_online_seconds{job} | histogram | Kafka message timestamp -> online write done (freshness) |
| finfeast_stream_consumer_lag{job,topic,partition} | gauge | high watermark - position |
| finfeast_stream_scored_total / finfeast_stream_anomalies_total{job} | counter | anomaly rate = anomalies / scored |
| finfeast_stream_anomaly_rate{job} | gauge | anomalies / scored since start |
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

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


class _Child:
    """One labelled series: a counter/gauge value, or histogram buckets + sum + count."""

    __slots__ = ("value", "buckets", "sum", "count", "_lock", "_bounds")

    def __init__(self, bounds: tuple[float, ...] | None, lock: threading.Lock) -> None:
        self.value = 0.0
        self._bounds = bounds
        self.buckets = [0] * (len(bounds) + 1) if bounds else []
        self.sum = 0.0
        self.count = 0
        self._lock = lock

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self._bounds, value)  # bucket i: value <= bounds[i]
        with self._lock:
            self.buckets[i] += 1
            self.sum += value
            self.count += 1

    def observe_many(self, values: np.ndarray) -> None:
        """`observe` of each value, in one step (a batch's freshness: one call, not one per
        event; prometheus_client has no bulk form)."""
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            return
        # side="left" is bisect_left: bucket i holds the values <= bounds[i] (Prometheus' le)
        counts = np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self.buckets)
        )
        with self._lock:
            for i in np.flatnonzero(counts).tolist():
                self.buckets[i] += int(counts[i])
            self.sum += float(values.sum())
            self.count += len(values)


class _Metric:
    """A metric family with `.labels(*values)` like prometheus_client's, stored in plain Python.

    Why not prometheus_client's Counter/Gauge/Histogram: importing Feast turns on
    prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR), where values live in
    per-process mmap files keyed by name and labels, so two jobs (or test runs) in one process
    would share counters. These series belong to their `JobMetrics` alone.
    """

    def __init__(
        self,
        name: str,
        doc: str,
        kind: str,
        labels: list[str],
        buckets: tuple[float, ...] | None = None,
    ) -> None:
        self.name, self.doc, self.kind, self.labelnames = name, doc, kind, labels
        self.bounds = buckets
        self.children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> _Child:
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            with self._lock:
                child = self.children.setdefault(key, _Child(self.bounds, threading.Lock()))
        return child

    def families(self) -> Iterator[Any]:
        if self.kind == "counter":
            fam = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
            for key, c in list(self.children.items()):
                fam.add_metric(list(key), c.value)
        elif self.kind == "gauge":
            fam = GaugeMetricFamily(self.name, self.doc, labels=self.labelnames)
            for key, c in list(self.children.items()):
                fam.add_metric(list(key), c.value)
        else:
            fam = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
            for key, c in list(self.children.items()):
                cumulative, running = [], 0
                for bound, n in zip((*self.bounds, float("inf")), c.buckets, strict=True):
                    running += n
                    cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
                fam.add_metric(list(key), cumulative, c.sum)
        yield fam


class JobMetrics:
    """The metric objects of one job, in their own registry."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.registry = CollectorRegistry(auto_describe=False)
        m = _Metric
        self.events_in = m(
            "finfeast_stream_events_in", "Messages consumed", "counter", ["job", "topic"]
        )
        self.events_out = m(
            "finfeast_stream_events_out", "Feature rows written online", "counter", ["job", "view"]
        )
        self.dlq = m(
            "finfeast_stream_dlq", "Messages dead-lettered", "counter", ["job", "topic", "reason"]
        )
        self.dlq_local = m(
            "finfeast_stream_dlq_local",
            "Dead letters kept locally (the DLQ topic refused them)",
            "counter",
            ["job", "topic", "reason"],
        )
        self.late = m(
            "finfeast_stream_late_events",
            "Late or replayed events skipped",
            "counter",
            ["job", "topic"],
        )
        self.retries = m(
            "finfeast_stream_write_retries", "Write attempts retried", "counter", ["job"]
        )
        self.batch_seconds = m(
            "finfeast_stream_batch_seconds",
            "Batch processing time (poll to commit)",
            "histogram",
            ["job"],
            _LATENCY_BUCKETS,
        )
        self.freshness = m(
            "finfeast_stream_event_to_online_seconds",
            "Message timestamp to online write",
            "histogram",
            ["job"],
            _LATENCY_BUCKETS,
        )
        self.lag = m(
            "finfeast_stream_consumer_lag",
            "High watermark minus position",
            "gauge",
            ["job", "topic", "partition"],
        )
        self.scored = m(
            "finfeast_stream_scored", "Bars scored by the anomaly model", "counter", ["job"]
        )
        self.anomalies = m(
            "finfeast_stream_anomalies", "Bars flagged anomalous", "counter", ["job"]
        )
        self.anomaly_rate = m(
            "finfeast_stream_anomaly_rate", "Anomalies / scored since start", "gauge", ["job"]
        )
        self._all = [v for v in vars(self).values() if isinstance(v, _Metric)]
        self.started = time.time()
        self.registry.register(self)
        self._server: Any = None

    def collect(self) -> Iterator[Any]:
        for metric in self._all:
            yield from metric.families()

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
