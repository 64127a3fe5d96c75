"""Prometheus metrics of the feature server, aggregated across gunicorn worker processes.

Why multiprocess mode: the server runs several forked workers, each with its own counters; a
scrape of `/metrics` on any worker must report the sum. `prepare_multiprocess_dir()` must run in
the master before `prometheus_client` is imported anywhere (Feast's own metrics module reads the
same variable), so the launcher calls it first thing. Without it (tests, notebooks) the process
registry is used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MP_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


def prepare_multiprocess_dir(path: Path | None = None) -> Path:
    """Point prometheus_client (ours and Feast's) at one fresh directory shared by all workers."""
    target = Path(path or tempfile.mkdtemp(prefix="finfeast_metrics_"))
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.db"):
        stale.unlink()
    for name in MP_ENV:
        os.environ[name] = str(target)
    return target


class ServerMetrics:
    """The server's metric objects (created once per process)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(
            "finfeast_serving_requests_total",
            "HTTP requests by route (Feast's routes; 'other' for the rest) and status.",
            ["route", "status"],
        )
        self.latency = Histogram(
            "finfeast_serving_request_seconds",
            "Server-side latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
        )
        self.logged_rows = Counter(
            "finfeast_serving_logged_rows_total",
            "Served rows written to the feature service's log destination.",
            ["feature_service"],
        )
        self.log_errors = Counter(
            "finfeast_serving_log_errors_total",
            "Failed serving-log flushes (rows of a failed flush are counted here).",
            ["feature_service"],
        )


_METRICS: ServerMetrics | None = None


def server_metrics() -> ServerMetrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = ServerMetrics()
    return _METRICS


def render_metrics() -> bytes:
    """Exposition text: all workers' metrics (ours, and Feast's own when its metrics are on)."""
    from prometheus_client import CollectorRegistry, generate_latest

    mp_dir = os.environ.get(MP_ENV[0])
    if mp_dir and Path(mp_dir).is_dir():
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=mp_dir)
    else:
        from prometheus_client import REGISTRY as registry  # type: ignore[no-redef]

    return generate_latest(registry)
