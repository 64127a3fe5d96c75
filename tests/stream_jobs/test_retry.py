"""The one retry policy (`finfeast.retry`) against real services: a dead service is retried with
backoff up to a bound, a configuration error fails at once with one line, a bug is not retried."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from finfeast import retry
from finfeast.errors import ConfigurationError, ServiceUnavailable

pytestmark = [pytest.mark.prod]


@pytest.fixture(autouse=True)
def _services(helpers) -> None:  # noqa: ANN001
    """Real Redis and PostgreSQL (skip locally when missing, fail in CI)."""
    helpers.require_service("redis")
    helpers.require_service("postgres")


FAST = retry.RetryPolicy(initial=0.01, maximum=0.05, max_seconds=0.5, locked_attempts=3)


def _redis_ping(**kw: object) -> object:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no client-side retries (as the stream writer): the policy under test owns them
    options = {"host": "127.0.0.1", "socket_connect_timeout": 1, "retry": Retry(NoBackoff(), 0)}
    return redis.Redis(**{**options, **kw}).ping()


def test_dead_service_is_retried_with_backoff_then_fails_with_one_line(helpers) -> None:
    port = helpers.free_port()  # nobody listens there
    delays: list[float] = []
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as err:
        retry.call(
            _redis_ping,
            port=port,
            what="redis ping",
            policy=FAST,
            on_retry=lambda e, d: delays.append(d),
        )
    assert time.monotonic() - started < 5
    assert len(delays) >= 3 and delays[1] > delays[0]  # exponential backoff
    assert max(delays) <= FAST.maximum
    assert "\n" not in str(err.value) and "redis ping" in str(err.value)


def test_service_that_comes_back_is_not_an_error(helpers) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return "ok"

    assert retry.call(flaky, what="flaky", policy=FAST) == "ok"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "kw",
    [
        {"password": "wrong-password"},
        {"username": "nobody", "password": "x"},
        {"host": "no-such-host.invalid"},
    ],
    ids=["wrong_password", "unknown_user", "unknown_host"],
)
def test_redis_configuration_errors_fail_at_once(kw: dict) -> None:
    attempts = []

    def ping() -> object:
        attempts.append(1)
        return _redis_ping(**kw)

    with pytest.raises(ConfigurationError) as err:
        retry.call(ping, what="redis", policy=FAST)
    assert len(attempts) == 1
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 user=postgres dbname=finfeast_no_such_db",
        "host=127.0.0.1 user=finfeast_no_such_role dbname=postgres",
        "host=no-such-host.invalid user=postgres",
    ],
    ids=["unknown_database", "unknown_role", "unknown_host"],
)
def test_postgres_configuration_errors_fail_at_once(dsn: str) -> None:
    import psycopg

    attempts = []

    def connect() -> object:
        attempts.append(1)
        return psycopg.connect(dsn, connect_timeout=2)

    with pytest.raises(ConfigurationError):
        retry.call(connect, what="postgres", policy=FAST)
    assert len(attempts) == 1


def test_postgres_down_is_transient(helpers) -> None:
    import psycopg

    with pytest.raises(ServiceUnavailable):
        retry.call(
            psycopg.connect,
            f"host=127.0.0.1 port={helpers.free_port()} user=postgres connect_timeout=1",
            what="postgres",
            policy=FAST,
        )


def test_locked_sqlite_is_retried_n_times_then_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    attempts = []

    def write() -> None:
        attempts.append(1)
        with sqlite3.connect(path, timeout=0) as conn:
            conn.execute("INSERT INTO t VALUES (1)")

    try:
        with pytest.raises(ConfigurationError) as err:
            retry.call(write, what="sqlite write", policy=FAST)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(attempts) == FAST.locked_attempts
    assert "locked" in str(err.value)
    retry.call(write, what="sqlite write", policy=FAST)  # free again: it works


def test_bad_yaml_is_a_configuration_error() -> None:
    import yaml

    with pytest.raises(ConfigurationError):
        retry.call(yaml.safe_load, "project: [unclosed", what="feature_store.yaml", policy=FAST)


def test_a_bug_is_raised_unchanged_and_not_retried() -> None:
    attempts = []

    def bug() -> None:
        attempts.append(1)
        raise KeyError("close")

    with pytest.raises(KeyError):
        retry.call(bug, what="bug", policy=FAST)
    assert attempts == [1]


def test_no_retry_decision_uses_class_names() -> None:
    """The retry decision lives in finfeast.retry alone, and by type (grep the code base)."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("stream_jobs", "finfeast", "ingestion", "transforms"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            if "_RETRYABLE_NAMES" in text or ("__mro__" in text and "retry" in text.lower()):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
