"""The one retry policy of finfeast: typed exceptions decide, tenacity runs the backoff.

Why one module: a retry decision made from exception *class names* in several places retried a
wrong password or a locked SQLite database forever. Here every failure is classified once, by
type (and, where a library uses one type for both, by the error code or the cause it carries):

| class | examples | what `call` does |
|---|---|---|
| `TRANSIENT` | `ServiceUnavailable`, `ConnectionError`, `TimeoutError`, redis connection/timeout/busy-loading, psycopg connection lost, retriable Kafka errors | retried with exponential backoff (`RetryPolicy.initial` doubling up to `maximum`) for at most `max_seconds` / `max_attempts`; then `ServiceUnavailable` with one line |
| `LOCKED` | `sqlite3.OperationalError: database is locked` | retried `locked_attempts` times, then `ConfigurationError` (another process holds the database) |
| `CONFIG` | `ConfigurationError`, wrong password (redis `AuthenticationError`, PostgreSQL 28P01/28000), unknown host (`socket.gaierror`), missing database, bad YAML, other SQLite operational errors, Kafka authentication/resolve errors | `ConfigurationError` at once, with one clear line |
| `OTHER` | anything else (a bug, bad data) | re-raised unchanged, never retried |

`call(fn, *args, what=..., policy=..., on_retry=..., should_stop=...)` is the whole API;
`retrying(what, policy)` is the same as a decorator.
"""

from __future__ import annotations

import functools
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_exponential,
)

from finfeast.errors import ConfigurationError, ServiceUnavailable

TRANSIENT = "transient"
LOCKED = "locked"
CONFIG = "config"
OTHER = "other"

T = TypeVar("T")

# PostgreSQL SQLSTATEs that no retry fixes: invalid authorization / password, unknown database or
# role. (psycopg reports connection-time failures without a SQLSTATE; see `_postgres`.)
_PG_CONFIG_STATES = {"28000", "28P01", "3D000", "42704"}
_PG_CONFIG_TEXT = (
    "password authentication failed",
    "could not translate host name",
    "failed to resolve host",
    "name or service not known",
    "no pg_hba.conf entry",
    "does not exist",
    "invalid dsn",
)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff and bounds; `max_attempts=None` means bounded by `max_seconds` only."""

    initial: float = 0.1
    maximum: float = 5.0
    max_seconds: float = 300.0
    max_attempts: int | None = None
    locked_attempts: int = 5


DEFAULT_POLICY = RetryPolicy()


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _postgres(exc: BaseException) -> str | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        if state in _PG_CONFIG_STATES:
            return CONFIG
        text = str(exc).lower()
        if state is None and any(t in text for t in _PG_CONFIG_TEXT):
            return CONFIG
        return TRANSIENT
    if isinstance(exc, psycopg.InterfaceError):
        return TRANSIENT
    return None


def _redis(exc: BaseException) -> str | None:
    try:
        from redis import exceptions as rex
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    auth = tuple(
        t for t in (rex.AuthenticationError, getattr(rex, "AuthorizationError", None)) if t
    )
    if isinstance(exc, auth):
        return CONFIG
    if isinstance(exc, rex.ResponseError) and str(exc).startswith(("WRONGPASS", "NOAUTH")):
        return CONFIG
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | rex.BusyLoadingError):
        if any(isinstance(e, socket.gaierror) for e in _chain(exc)[1:]):
            return CONFIG
        if "name or service not known" in str(exc).lower():  # redis-py drops the gaierror cause
            return CONFIG
        return TRANSIENT
    return None


def _kafka(exc: BaseException) -> str | None:
    try:
        from confluent_kafka import KafkaError, KafkaException
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, KafkaException) or not exc.args:
        return None
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return None
    code = err.code()
    config_codes = {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._RESOLVE,
        KafkaError._INVALID_ARG,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }
    if code in config_codes or err.fatal():
        return CONFIG
    transient = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT}
    if err.retriable() or code in transient:
        return TRANSIENT
    return OTHER


def classify(exc: BaseException) -> str:
    """`TRANSIENT`, `LOCKED`, `CONFIG` or `OTHER` for one exception (see the module table)."""
    if isinstance(exc, ConfigurationError):
        return CONFIG
    if isinstance(exc, ServiceUnavailable):
        return TRANSIENT
    for check in (_redis, _postgres, _kafka):
        kind = check(exc)
        if kind is not None:
            return kind
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return LOCKED if "locked" in text or "busy" in text else CONFIG
    if isinstance(exc, socket.gaierror):
        return CONFIG
    if isinstance(exc, ConnectionError | TimeoutError):
        return TRANSIENT
    try:
        import yaml

        if isinstance(exc, yaml.YAMLError):
            return CONFIG
    except ImportError:  # pragma: no cover
        pass
    return OTHER


def call(
    fn: Callable[..., T],
    *args: Any,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: Callable[[BaseException, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Run `fn(*args, **kwargs)` under the policy; raises typed errors (see the module table).

    `on_retry(exc, delay)` runs before each backoff sleep (metrics); `should_stop()` true ends
    the retries early (a job shutting down), raising what the last attempt raised.
    """
    started = time.monotonic()

    def locked_out(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return exc is not None and (
            classify(exc) == LOCKED and state.attempt_number >= policy.locked_attempts
        )

    stops = [stop_after_delay(policy.max_seconds), locked_out]
    if policy.max_attempts is not None:
        stops.append(stop_after_attempt(policy.max_attempts))
    if should_stop is not None:
        stops.append(lambda _state: should_stop())

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning("{} failed ({}); retrying in {:.1f}s", what, one_line(exc), delay)
        if on_retry is not None and exc is not None:
            on_retry(exc, delay)

    retryer = Retrying(
        retry=retry_if_exception(lambda e: classify(e) in (TRANSIENT, LOCKED)),
        stop=stop_any(*stops),
        wait=wait_exponential(multiplier=policy.initial, min=policy.initial, max=policy.maximum),
        before_sleep=before_sleep,
        sleep=sleep,
    )
    try:
        return retryer(fn, *args, **kwargs)
    except RetryError as err:
        last = err.last_attempt.exception()
        attempts = err.last_attempt.attempt_number
        elapsed = time.monotonic() - started
        if last is None:  # pragma: no cover - a RetryError always carries a failed attempt
            raise
        if classify(last) == LOCKED:
            raise ConfigurationError(
                f"{what}: database still locked after {attempts} attempts "
                f"(another process holds it?): {one_line(last)}"
            ) from last
        if should_stop is not None and should_stop():
            raise last from None
        raise ServiceUnavailable(
            f"{what}: still failing after {attempts} attempts over {elapsed:.0f}s: {one_line(last)}"
        ) from last
    except Exception as exc:
        if classify(exc) == CONFIG and not isinstance(exc, ConfigurationError):
            raise ConfigurationError(f"{what}: {one_line(exc)}") from exc
        raise


def retrying(
    what: str, policy: RetryPolicy = DEFAULT_POLICY
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form of `call`."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> T:
            return call(fn, *args, what=what, policy=policy, **kwargs)

        return inner

    return wrap
