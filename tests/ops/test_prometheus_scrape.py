"""The stack's Prometheus config and Grafana queries against real exporters and a real Prometheus.

deploy/prometheus/prometheus.yml is loaded with only its targets rewritten to loopback (the
compose service names do not resolve here): the feature server is the real `finfeast serve`, the
stream jobs' endpoints are the real `stream_jobs.metrics.JobMetrics` exporters (fed through their
own metric objects, as a job does). Prometheus (Debian package) scrapes them every second; then
every query of the Grafana dashboard must return series, grouped by the scrape job names the
dashboard and docs/ops.md promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from finfeast.config import REPO_ROOT
from finfeast.processes import stop_process_group

PROMETHEUS_YML = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "finfeast.json"
STREAM_JOBS = {"stream-market": "market", "stream-accounts": "accounts"}

pytestmark = pytest.mark.slow


def _get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture(scope="module")
def feature_server(applied_local, root_conftest, tmp_path_factory):
    """`finfeast serve` (1 worker) over the applied local registry."""
    port = root_conftest.free_port()
    env = {**os.environ, **applied_local.env(), "FINFEAST_REPO_PATH": str(applied_local.repo_path)}
    finfeast = str(Path(sys.executable).parent / "finfeast")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [finfeast, "serve", "--port", str(port), "--workers", "1"]
    proc = _start(cmd, log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
            120,
            f"finfeast serve: {log}",
        )
        yield url, port
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="module")
def stream_exporters():
    """One real JobMetrics exporter per stream job, on free loopback ports."""
    from stream_jobs.metrics import JobMetrics

    exporters = {name: JobMetrics(job) for name, job in STREAM_JOBS.items()}
    ports = {name: m.serve(0) for name, m in exporters.items()}
    yield exporters, ports
    for m in exporters.values():
        m.stop()


def _record_stream_activity(exporters) -> None:
    """What a job records per batch (stream_jobs/consumer.py): in, out, DLQ, freshness, lag..."""
    for m in exporters.values():
        job = m.job
        m.events_in.labels(job, f"{job}.topic").inc(500)
        m.events_out.labels(job, f"stream_{job}").inc(480)
        m.dlq.labels(job, f"{job}.topic", "schema").inc(3)
        m.late.labels(job, f"{job}.topic").inc(1)
        for seconds in (0.004, 0.02, 0.3):
            m.freshness.labels(job).observe(seconds)
            m.batch_seconds.labels(job).observe(seconds / 2)
        m.lag.labels(job, f"{job}.topic", "0").set(42)
        m.scored.labels(job).inc(480)
        m.anomalies.labels(job).inc(5)


def _hit_server(url: str, n: int) -> None:
    body = json.dumps({"feature_service": "daily_v1", "entities": {"symbol": ["AAPL", "IBM"]}})
    for _ in range(n):
        req = urllib.request.Request(
            f"{url}/get-online-features",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200


@pytest.fixture(scope="module")
def prometheus(feature_server, stream_exporters, program, root_conftest, tmp_path_factory):
    """The real Prometheus on the stack's config, targets rewritten to the loopback exporters."""
    _, server_port = feature_server
    _, stream_ports = stream_exporters
    port = root_conftest.free_port()
    targets = {
        "feature-server": f"127.0.0.1:{server_port}",
        "prometheus": f"127.0.0.1:{port}",
        **{name: f"127.0.0.1:{p}" for name, p in stream_ports.items()},
    }
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"scrape jobs changed: {jobs ^ set(targets)} (update this test)"
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    cmd = [
        program("prometheus"),
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = _start(cmd, work / "prometheus.log")
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait(
            lambda: (
                all(
                    t["health"] == "up"
                    for t in _get_json(f"{api}/targets")["data"]["activeTargets"]
                )
                and len(_get_json(f"{api}/targets")["data"]["activeTargets"]) == len(targets)
            ),
            60,
            "every scrape target up",
        )
        yield api
    finally:
        stop_process_group(proc)


def _query(api: str, expr: str) -> list[dict]:
    data = _get_json(f"{api}/query?{urllib.parse.urlencode({'query': expr})}")
    assert data["status"] == "success", data
    return data["data"]["result"]


@pytest.fixture(scope="module")
def scraped(prometheus, feature_server, stream_exporters):
    """Two rounds of activity a few scrapes apart, so rate() and quantiles have samples."""
    url, _ = feature_server
    exporters, _ = stream_exporters
    for _ in range(2):
        _record_stream_activity(exporters)
        _hit_server(url, 20)
        time.sleep(2.5)
    return prometheus


def test_every_dashboard_query_returns_series(scraped) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    empty = [
        (panel["title"], target["expr"])
        for panel in panels
        for target in panel["targets"]
        if not _query(scraped, target["expr"])
    ]
    assert not empty, f"queries without data: {empty}"


def test_stream_panels_group_by_the_scrape_job(scraped) -> None:
    rows = _query(scraped, "sum by (job) (rate(finfeast_stream_events_in_total[1m]))")
    by_job = {r["metric"]["job"]: float(r["value"][1]) for r in rows}
    assert set(by_job) == set(STREAM_JOBS)
    assert all(v > 0 for v in by_job.values()), by_job
    exported = _query(scraped, "count by (job, exported_job) (finfeast_stream_events_in_total)")
    assert {(r["metric"]["job"], r["metric"]["exported_job"]) for r in exported} == set(
        STREAM_JOBS.items()
    )


def test_serving_requests_are_counted_by_route(scraped) -> None:
    rows = _query(scraped, "sum by (route, status) (finfeast_serving_requests_total)")
    counts = {(r["metric"]["route"], r["metric"]["status"]): float(r["value"][1]) for r in rows}
    assert counts.get(("/get-online-features", "200"), 0) >= 40, counts
