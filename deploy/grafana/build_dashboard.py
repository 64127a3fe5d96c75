"""Generate deploy/grafana/dashboards/finfeast.json, the stack's Grafana dashboard.

Why generated: a Grafana dashboard is hundreds of lines of repetitive JSON. The panels are declared
here once (title, PromQL, unit), the JSON is derived, and tests/ops check that the committed file
is up to date and that every metric a panel queries is one the code really exports
(`stream_jobs.metrics.JobMetrics` and the feature server's metrics).

    .venv/bin/python deploy/grafana/build_dashboard.py          # rewrite the JSON
    .venv/bin/python deploy/grafana/build_dashboard.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

DASHBOARD_PATH = Path(__file__).resolve().parent / "dashboards" / "finfeast.json"
DATASOURCE = {"type": "prometheus", "uid": "finfeast-prometheus"}  # provisioning/datasources


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


def _quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[5m])))"


PANELS: tuple[Panel, ...] = (
    Panel(
        "Stream throughput",
        "Kafka messages consumed and feature rows written online per second, per job.",
        "ops",
        (
            Query("sum by (job) (rate(finfeast_stream_events_in_total[1m]))", "{{job}} in"),
            Query("sum by (job) (rate(finfeast_stream_events_out_total[1m]))", "{{job}} out"),
        ),
    ),
    Panel(
        "Freshness: event to online (p50 / p99)",
        "Kafka message timestamp to the online write being done.",
        "s",
        (
            Query(_quantile(0.5, "finfeast_stream_event_to_online_seconds", "job"), "{{job}} p50"),
            Query(_quantile(0.99, "finfeast_stream_event_to_online_seconds", "job"), "{{job}} p99"),
        ),
    ),
    Panel(
        "Dead-letter queue",
        "Messages sent to <topic>.dlq per second, by reason; late/replayed events skipped.",
        "ops",
        (
            Query(
                "sum by (job, reason) (rate(finfeast_stream_dlq_total[5m]))", "{{job}} {{reason}}"
            ),
            Query("sum by (job) (rate(finfeast_stream_late_events_total[5m]))", "{{job}} late"),
        ),
    ),
    Panel(
        "Consumer lag",
        "High watermark minus position, summed over partitions.",
        "short",
        (Query("sum by (job, topic) (finfeast_stream_consumer_lag)", "{{job}} {{topic}}"),),
    ),
    Panel(
        "Anomaly rate",
        "Share of scored bars the River model flags as anomalous (5-minute window).",
        "percentunit",
        (
            Query(
                "sum by (job) (rate(finfeast_stream_anomalies_total[5m]))"
                " / sum by (job) (rate(finfeast_stream_scored_total[5m]))",
                "{{job}}",
            ),
        ),
    ),
    Panel(
        "Serving latency (p50 / p99)",
        "Server-side latency by route (Feast's handlers over the finfeast online-store plugin).",
        "s",
        (
            Query(_quantile(0.5, "finfeast_serving_request_seconds", "route"), "{{route}} p50"),
            Query(_quantile(0.99, "finfeast_serving_request_seconds", "route"), "{{route}} p99"),
        ),
    ),
    Panel(
        "Serving requests",
        "Feature server requests per second by route and HTTP status.",
        "reqps",
        (
            Query(
                "sum by (route, status) (rate(finfeast_serving_requests_total[1m]))",
                "{{route}} {{status}}",
            ),
        ),
    ),
    Panel(
        "Serving error share",
        "Share of feature-server requests not answered 200 (4xx: malformed requests; 5xx: faults).",
        "percentunit",
        (
            Query(
                '1 - sum(rate(finfeast_serving_requests_total{status="200"}[5m])) / '
                "sum(rate(finfeast_serving_requests_total[5m]))",
                "non-200 share",
            ),
        ),
    ),
    Panel(
        "Stream batch time (p99)",
        "Poll-to-commit time of a consumer batch.",
        "s",
        (Query(_quantile(0.99, "finfeast_stream_batch_seconds", "job"), "{{job}} p99"),),
    ),
)


def _panel_json(panel: Panel, index: int) -> dict:
    width, height = 12, 8
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": (index % 2) * width, "y": (index // 2) * height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def build_dashboard() -> dict:
    """The dashboard as a dict (Grafana schema 39)."""
    return {
        "uid": "finfeast-overview",
        "title": "finfeast: streaming and serving",
        "tags": ["finfeast", "feast"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "panels": [_panel_json(p, i) for i, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DASHBOARD_PATH.read_text() if DASHBOARD_PATH.exists() else ""
        if current != text:
            print(f"{DASHBOARD_PATH} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH} ({len(PANELS)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
