"""`finfeast serve` as a subprocess on a free loopback port: Feast's own HTTP app over the plugin
store, 4xx for malformed requests, metrics by status, serving logs and the serving-log audit
(including a deliberately corrupted online value)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import requests

from bench.price_repo import SERVICE

pytestmark = pytest.mark.slow


def _post(server, payload: dict) -> requests.Response:
    return requests.post(f"{server.url}/get-online-features", json=payload, timeout=30)


def _by_name(body: dict) -> dict:
    return dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))


def test_health(server) -> None:
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "selector",
    [
        {"feature_service": SERVICE},
        {"features": ["px_returns:ret_1", "px_ranges:range_20"]},
        {"feature_service": SERVICE, "full_feature_names": True},
    ],
)
def test_online_features_equal_feast_sdk(server, price_store, selector: dict) -> None:
    from feast.feature_server_utils import convert_response_to_dict

    symbols = ["AAPL", "JPM", "NOT_A_SYMBOL"]
    response = _post(server, {**selector, "entities": {"symbol": symbols}})
    assert response.status_code == 200, response.text
    features = (
        price_store.get_feature_service(selector["feature_service"])
        if "feature_service" in selector
        else selector["features"]
    )
    sdk = price_store.get_online_features(
        features=features,
        entity_rows=[{"symbol": s} for s in symbols],
        full_feature_names=selector.get("full_feature_names", False),
    )
    assert _by_name(response.json()) == _by_name(convert_response_to_dict(sdk.proto))


def test_requests_the_plugin_plan_skips_are_answered_by_feast(server) -> None:
    body = {
        "features": ["px_returns:ret_1"],
        "entities": {"symbol": ["AAPL"]},
        "include_feature_view_version_metadata": True,
    }
    response = _post(server, body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["metadata"]["feature_view_metadata"] == [{"name": "px_returns"}]
    lean = _post(server, {"features": ["px_returns:ret_1"], "entities": {"symbol": ["AAPL"]}})
    feast_col, plan_col = _by_name(payload)["ret_1"], _by_name(lean.json())["ret_1"]
    for key in ("values", "event_timestamps"):
        assert feast_col[key] == plan_col[key]
    # Feast's per-view path never marks max age; the plugin's plan does (the bars are from 2018)
    assert feast_col["statuses"] == ["PRESENT"] and plan_col["statuses"] == ["OUTSIDE_MAX_AGE"]


BAD_REQUESTS = {
    "wrong join key": (
        {"features": ["px_returns:ret_1"], "entities": {"ticker": ["AAPL"]}},
        "symbol",
    ),
    "unqualified feature": ({"features": ["ret_1"], "entities": {"symbol": ["AAPL"]}}, "ret_1"),
    "unknown view": ({"features": ["nope:ret_1"], "entities": {"symbol": ["A"]}}, "nope"),
    "unknown feature": ({"features": ["px_returns:nope"], "entities": {"symbol": ["A"]}}, "nope"),
    "unknown service": ({"feature_service": "no_such", "entities": {"symbol": ["A"]}}, "no_such"),
    "no entities": ({"feature_service": SERVICE}, "entities"),
    "empty entities": ({"feature_service": SERVICE, "entities": {}}, "entities"),
    "int for a string key": ({"feature_service": SERVICE, "entities": {"symbol": [7]}}, "string"),
    "null key": ({"feature_service": SERVICE, "entities": {"symbol": [None]}}, "symbol"),
    "ragged columns": (
        {"feature_service": SERVICE, "entities": {"symbol": ["A", "B"], "x": [1]}},
        "length",
    ),
    "no features": ({"features": [], "entities": {"symbol": ["A"]}}, "features"),
    "neither features nor service": ({"entities": {"symbol": ["A"]}}, "features"),
    "name collision": (
        {"features": ["px_returns:ret_1", "px_returns:ret_1"], "entities": {"symbol": ["A"]}},
        "ret_1",
    ),
    "entities not a list": ({"feature_service": SERVICE, "entities": {"symbol": "A"}}, "list"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_naming_the_problem(server, case: str) -> None:
    body, named = BAD_REQUESTS[case]
    response = _post(server, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert named in response.text, response.text


def test_malformed_json_is_a_422(server) -> None:
    bad_json = requests.post(
        f"{server.url}/get-online-features",
        data=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert bad_json.status_code == 422


def test_push_online_then_read_it_back(server) -> None:
    ts = datetime.now(UTC).isoformat()
    push = requests.post(
        f"{server.url}/push",
        json={
            "push_source_name": "px_push",
            "df": {
                "symbol": ["GE"],
                "close": [12.345],
                "event_timestamp": [ts],
                "created_timestamp": [ts],
            },
            "to": "online",
        },
        timeout=30,
    )
    assert push.status_code == 200, push.text
    got = _post(server, {"features": ["px_live:close"], "entities": {"symbol": ["GE"]}})
    assert _by_name(got.json())["close"]["values"] == [12.345]


def _samples(server) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _count(samples: dict, status: str) -> float:
    key = (
        "finfeast_serving_requests_total",
        (("route", "/get-online-features"), ("status", status)),
    )
    return samples.get(key, 0.0)


def test_metrics_count_every_request_by_status(server) -> None:
    before = _samples(server)
    for _ in range(3):
        _post(server, {"feature_service": SERVICE, "entities": {"symbol": ["IBM"]}})
    for _ in range(2):  # Feast answers these itself (404 / 422) and re-raises: still counted
        _post(server, {"feature_service": "no_such", "entities": {"symbol": ["IBM"]}})
        _post(server, {"features": ["ret_1"], "entities": {"symbol": ["IBM"]}})
    after = _samples(server)
    assert _count(after, "200") - _count(before, "200") == 3
    assert _count(after, "404") - _count(before, "404") == 2
    assert _count(after, "422") - _count(before, "422") == 2
    assert _count(after, "500") == 0


def _wait_for_logs(store, since: datetime, symbol: str, timeout: float = 30.0) -> pd.DataFrame:
    from finfeast.serving.audit import read_serving_logs

    deadline = time.monotonic() + timeout
    while True:
        logs = read_serving_logs(store, SERVICE, since, datetime.now(UTC) + timedelta(minutes=1))
        if not logs.empty and (logs["symbol"] == symbol).any():
            return logs
        if time.monotonic() > deadline:
            raise AssertionError(f"no serving log rows for {symbol} after {timeout}s")
        time.sleep(0.5)


def test_served_rows_are_logged_and_audit_clean(server, price_store) -> None:
    from finfeast.serving.audit import audit_serving_logs

    since = datetime.now(UTC)  # the server stamps rows when it serves them (same clock)
    response = _post(server, {"feature_service": SERVICE, "entities": {"symbol": ["MSFT", "T"]}})
    served = _by_name(response.json())
    logs = _wait_for_logs(price_store, since, "T")
    row = logs[logs["symbol"] == "MSFT"].iloc[-1]
    assert row["px_returns__ret_1"] == served["ret_1"]["values"][0]
    assert pd.Timestamp(row["px_returns__ret_1__timestamp"]) == pd.Timestamp(
        served["ret_1"]["event_timestamps"][0]
    )
    from finfeast.serving.responses import STATUS_NAMES

    # the served status is logged (OUTSIDE_MAX_AGE here: the repo's bars are from 2018)
    served_status = served["ret_1"]["statuses"][0]
    assert STATUS_NAMES[row["px_returns__ret_1__status"]] == served_status == "OUTSIDE_MAX_AGE"
    report = audit_serving_logs(price_store, SERVICE, since, datetime.now(UTC))
    assert report.compared_values >= 2 * 50
    assert report.mismatched_values == 0, report.examples


def test_audit_finds_a_corrupted_online_value(server, price_store) -> None:
    """Overwrite one served value in Redis (same event timestamp): the audit must flag exactly it."""
    import redis
    from feast.protos.feast.types.Value_pb2 import Value

    from finfeast.feast_plugins import encoding as enc
    from finfeast.serving.audit import audit_serving_logs

    key = enc.redis_key(enc.entity_key_bytes(["symbol"], ["XOM"]), price_store.project)
    field = enc.feature_field("px_returns", "ret_1")
    client = redis.Redis(host="127.0.0.1", port=6379)
    original = client.hget(key, field)
    true_value = Value.FromString(original).double_val
    client.hset(key, field, Value(double_val=true_value + 0.5).SerializeToString())
    try:
        since = datetime.now(UTC)  # the server stamps rows when it serves them (same clock)
        _post(server, {"feature_service": SERVICE, "entities": {"symbol": ["XOM", "BAC"]}})
        _wait_for_logs(price_store, since, "XOM")
        report = audit_serving_logs(price_store, SERVICE, since, datetime.now(UTC))
    finally:
        client.hset(key, field, original)
    assert report.compared_values == 2 * 50
    assert report.mismatched_values == 1
    assert report.mismatch_rate == pytest.approx(1 / 100)
    (example,) = report.examples
    assert example["symbol"] == "XOM" and example["feature"] == "px_returns__ret_1"
    assert example["served"] == pytest.approx(true_value + 0.5)
    assert example["backfill"] == pytest.approx(true_value)


def test_serving_store_memoizes_feature_services_per_registry_refresh(price_repo) -> None:
    from feast import FeatureStore

    from finfeast.serving.launcher import serving_store

    store = serving_store(FeatureStore)(
        repo_path=str(price_repo.path), fs_yaml_file=price_repo.yaml
    )
    first = store.get_feature_service(SERVICE, allow_cache=True)
    assert store.get_feature_service(SERVICE, allow_cache=True) is first
    store.refresh_registry()
    again = store.get_feature_service(SERVICE, allow_cache=True)
    assert again is not first and again == first
    assert store.get_feature_service(SERVICE) is not again  # uncached reads stay Feast's
