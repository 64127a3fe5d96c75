"""The project's own repo on the prod profile (PostgreSQL + Redis): `finfeast --profile prod serve`
serves `daily_v1` through the lean path and `realtime_v1` (on-demand view + request data) through
Feast's handler, logs what it served for `realtime_v1`, and the audit finds the daily values equal
to the backfill. Real data: packaged S&P 500 / NASDAQ indices and LEAN daily equities."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

pytestmark = [pytest.mark.slow, pytest.mark.prod]
SYMBOLS = ["AAPL", "IBM", "^GSPC"]


@pytest.fixture(scope="module")
def project(settings_factory):
    from finfeast.store import apply_repo, materialize
    from ingestion import run_ingest
    from transforms.build import build_feature_tables

    settings = settings_factory("prod", "srvproj")
    run_ingest(settings, sources=["arch_indices", "lean_daily"], progress=False)
    build_feature_tables(settings)
    apply_repo(settings)
    materialize(settings)
    return settings


@pytest.fixture(scope="module")
def project_server(project, tmp_path_factory, server_control):
    start_finfeast_server, stop_server = server_control
    running = start_finfeast_server(
        None,
        tmp_path_factory.mktemp("proj_server") / "server.log",
        "--profile",
        "prod",
        env=project.env(),
    )
    yield running
    stop_server(running.proc)


def _by_name(body: dict) -> dict:
    return dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))


def _post(server, payload: dict) -> dict:
    response = requests.post(f"{server.url}/get-online-features", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    return _by_name(response.json())


def test_daily_service_over_http_equals_sdk(project, project_server) -> None:
    from feast.feature_server_utils import convert_response_to_dict

    from finfeast.store import get_store

    got = _post(project_server, {"feature_service": "daily_v1", "entities": {"symbol": SYMBOLS}})
    store = get_store(project)
    sdk = store.get_online_features(
        features=store.get_feature_service("daily_v1"),
        entity_rows=[{"symbol": s} for s in SYMBOLS],
    )
    assert got == _by_name(convert_response_to_dict(sdk.proto))
    assert all(v is not None for v in got["sma_20"]["values"])


def test_realtime_service_is_served_logged_and_audited(project, project_server) -> None:
    from finfeast.serving.audit import audit_serving_logs, read_serving_logs
    from finfeast.store import get_store

    since = datetime.now(UTC)  # the server stamps rows when it serves them (same clock)
    live = [200.0, 150.0, 2500.0]
    got = _post(
        project_server,
        {
            "feature_service": "realtime_v1",
            "full_feature_names": True,
            "entities": {"symbol": SYMBOLS, "live_price": live},
        },
    )
    sma = [float(v) for v in got["daily_trend__sma_20"]["values"]]
    ratio = got["live_price_vs_sma__live_vs_sma_20"]["values"]
    assert ratio == pytest.approx([p / s - 1.0 for p, s in zip(live, sma, strict=True)])

    store = get_store(project)
    deadline = time.monotonic() + 30
    while True:
        logs = read_serving_logs(
            store, "realtime_v1", since, datetime.now(UTC) + timedelta(minutes=1)
        )
        if len(logs) >= len(SYMBOLS) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(logs["symbol"]) == sorted(SYMBOLS)
    assert sorted(logs["live_price"]) == sorted(live)
    report = audit_serving_logs(store, "realtime_v1", since, datetime.now(UTC))
    daily = [f for f in report.features if f.column.startswith("daily_")]
    assert daily and all(f.compared == len(SYMBOLS) for f in daily)
    assert report.mismatched_values == 0, report.examples
    assert any(c.startswith("live_price_vs_sma__") for c in report.skipped_columns)


def _doc_curl_commands() -> list[str]:
    """The commands of the docs/serving.md block marked `docs-curl` (continuations joined)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    block = text.split("<!-- docs-curl:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def test_docs_curl_examples_run_as_written(project_server) -> None:
    import json
    import subprocess

    commands = _doc_curl_commands()
    assert len(commands) >= 3
    for command in commands:
        assert command.startswith("curl -s localhost:6566/"), command
        run = command.replace("localhost:6566", f"127.0.0.1:{project_server.port}", 1)
        run += " -o /dev/stdout -w '\\n%{http_code}'"
        proc = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (command, proc.stderr)
        body, _, status = proc.stdout.rpartition("\n")
        assert status == "200", (command, status, body[:500])
        if "/get-online-features" in command:
            payload = _by_name(json.loads(body))
            features = [n for n in payload if n != "symbol"]
            assert features and all(
                v is not None for n in features for v in payload[n]["values"]
            ), (command, body[:500])
