"""Alpha Vantage HTTP client: TIME_SERIES_DAILY, TIME_SERIES_INTRADAY and FX_DAILY.

Why its own module: a real market-data API fails in ways files do not. This client
* takes the API key from the environment (ALPHAVANTAGE_API_KEY) and never logs it;
* uses connect/read timeouts and retries 5xx answers, connection errors, timeouts, truncated
  JSON and rate-limit bodies with exponential backoff (bounded attempts);
* detects the error bodies Alpha Vantage sends with HTTP 200 ("Error Message", "Note",
  "Information") by key: "Error Message" and premium "Information" fail at once, rate-limit
  notes are retried after a backoff;
* spaces calls with a client-side rate limiter (default 5 calls per minute, the free tier);
* caches successful responses on disk (key = the query without the API key) for `cache_ttl`.
Parsing goes by key structure ("Time Series ...", "N. field"), not by label text, which changed
over the years.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from loguru import logger

from finfeast.errors import FinfeastError

DEFAULT_BASE_URL = "https://www.alphavantage.co/query"
_RATE_LIMIT_WORDS = re.compile(r"call frequency|rate limit|per minute|per day|requests per", re.I)


class AlphaVantageError(FinfeastError):
    """The API answered with an error, or kept failing after the retries."""


class _Retryable(Exception):
    """A failure worth another attempt (5xx, network, timeout, truncated body, rate limit)."""


@dataclass
class ClientConfig:
    api_key: str
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 15.0
    attempts: int = 4
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles each time
    backoff_max: float = 30.0
    calls_per_minute: float = 5.0
    cache_dir: Path | None = None
    cache_ttl: float = 12 * 3600.0

    @classmethod
    def from_env(cls, cache_dir: Path | None = None) -> ClientConfig:
        env = os.environ
        key = env.get("ALPHAVANTAGE_API_KEY", "")
        if not key:
            raise AlphaVantageError("ALPHAVANTAGE_API_KEY is not set")
        return cls(
            api_key=key,
            base_url=env.get("ALPHAVANTAGE_BASE_URL") or DEFAULT_BASE_URL,
            timeout=float(env.get("ALPHAVANTAGE_TIMEOUT") or 15.0),
            attempts=int(env.get("ALPHAVANTAGE_ATTEMPTS") or 4),
            backoff=float(env.get("ALPHAVANTAGE_BACKOFF") or 1.0),
            calls_per_minute=float(env.get("ALPHAVANTAGE_CALLS_PER_MINUTE") or 5.0),
            cache_dir=cache_dir,
            cache_ttl=float(env.get("ALPHAVANTAGE_CACHE_TTL") or 12 * 3600.0),
        )


@dataclass
class RateLimiter:
    """At most `calls_per_minute` calls: each call waits until 60/cpm s after the previous one."""

    calls_per_minute: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def acquire(self) -> float:
        """Block until a call is allowed; returns the seconds waited."""
        if self.calls_per_minute <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            wait = max(0.0, self._next - now)
            if wait:
                self.sleep(wait)
            self._next = max(now, self._next) + 60.0 / self.calls_per_minute
            return wait


class ResponseCache:
    """Successful JSON responses on disk, keyed by the query parameters minus the API key."""

    def __init__(self, root: Path, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.root, self.ttl, self.clock = Path(root), ttl, clock

    def _path(self, params: dict[str, str]) -> Path:
        public = sorted((k, v) for k, v in params.items() if k.lower() != "apikey")
        digest = hashlib.sha256(json.dumps(public).encode()).hexdigest()[:20]
        return self.root / f"{params.get('function', 'query')}_{digest}.json"

    def get(self, params: dict[str, str]) -> dict[str, Any] | None:
        p = self._path(params)
        if not p.exists() or self.clock() - p.stat().st_mtime > self.ttl:
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put(self, params: dict[str, str], body: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        p = self._path(params)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(p)


class AlphaVantageClient:
    """A small, defensive Alpha Vantage client (see the module docstring)."""

    def __init__(
        self,
        config: ClientConfig,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import requests

        self.config = config
        self.session = session or requests.Session()
        self.sleep = sleep
        self.limiter = RateLimiter(config.calls_per_minute, clock=clock, sleep=sleep)
        self.cache = ResponseCache(config.cache_dir, config.cache_ttl) if config.cache_dir else None
        self.calls = 0  # HTTP requests actually sent

    # ---- transport -----------------------------------------------------------------------
    def query(self, **params: str) -> dict[str, Any]:
        """One API call (cached, rate-limited, retried); returns the parsed JSON body."""
        params = {**params, "apikey": self.config.api_key}
        if self.cache is not None and (hit := self.cache.get(params)) is not None:
            return hit
        last = ""
        for attempt in range(1, self.config.attempts + 1):
            try:
                body = self._once(params)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.config.attempts:
                    break
                delay = min(self.config.backoff * 2 ** (attempt - 1), self.config.backoff_max)
                logger.warning(
                    "alphavantage {}: {} (attempt {}/{}, retry in {:.2f}s)",
                    params.get("function"), last, attempt, self.config.attempts, delay,
                )  # fmt: skip
                self.sleep(delay)
                continue
            if self.cache is not None:
                self.cache.put(params, body)
            return body
        raise AlphaVantageError(
            f"Alpha Vantage {params.get('function')} failed after {self.config.attempts} attempts: {last}"
        )

    def _once(self, params: dict[str, str]) -> dict[str, Any]:
        import requests

        self.limiter.acquire()
        self.calls += 1
        try:
            resp = self.session.get(
                self.config.base_url, params=params, timeout=self.config.timeout
            )
        except requests.Timeout as exc:
            raise _Retryable(f"timeout after {self.config.timeout}s") from exc
        except requests.ConnectionError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise AlphaVantageError(f"Alpha Vantage answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise _Retryable("invalid or truncated JSON body") from exc
        if not isinstance(body, dict):
            raise AlphaVantageError("unexpected JSON body (not an object)")
        check_error_body(body)
        return body

    # ---- endpoints -----------------------------------------------------------------------
    def daily(
        self, symbol: str, outputsize: str = "compact"
    ) -> tuple[dict[str, str], pd.DataFrame]:
        body = self.query(function="TIME_SERIES_DAILY", symbol=symbol, outputsize=outputsize)
        return parse_series(body)

    def intraday(
        self, symbol: str, interval: str = "5min", outputsize: str = "compact"
    ) -> tuple[dict[str, str], pd.DataFrame]:
        body = self.query(
            function="TIME_SERIES_INTRADAY", symbol=symbol, interval=interval, outputsize=outputsize
        )
        return parse_series(body)

    def fx_daily(
        self, from_symbol: str, to_symbol: str, outputsize: str = "compact"
    ) -> tuple[dict[str, str], pd.DataFrame]:
        body = self.query(
            function="FX_DAILY", from_symbol=from_symbol, to_symbol=to_symbol, outputsize=outputsize
        )
        return parse_series(body)


def check_error_body(body: dict[str, Any]) -> None:
    """Raise for the error bodies that arrive with HTTP 200."""
    if "Error Message" in body:
        raise AlphaVantageError(f"Alpha Vantage error: {str(body['Error Message'])[:200]}")
    for key in ("Note", "Information"):
        if key in body and not any(k.startswith("Time Series") for k in body):
            text = str(body[key])
            if _RATE_LIMIT_WORDS.search(text):
                raise _Retryable(f"rate limited ({key}): {text[:120]}")
            raise AlphaVantageError(f"Alpha Vantage refused ({key}): {text[:200]}")


def _strip(name: str) -> str:
    """'1. open' -> 'open', '5. adjusted close' -> 'adjusted_close'."""
    return re.sub(r"^\d+[a-z]?\.\s*", "", name).strip().replace(" ", "_").lower()


def parse_series(body: dict[str, Any]) -> tuple[dict[str, str], pd.DataFrame]:
    """(meta data, rows oldest first with a `timestamp` string column and string values)."""
    meta = {_strip(k): str(v) for k, v in body.get("Meta Data", {}).items()}
    keys = [k for k in body if k.startswith("Time Series")]
    if not keys or not isinstance(body[keys[0]], dict):
        raise AlphaVantageError(
            f"Alpha Vantage response has no time series (keys: {', '.join(list(body)[:5])})"
        )
    series = body[keys[0]]
    rows = [
        {"timestamp": ts, **{_strip(k): v for k, v in fields.items()}}
        for ts, fields in series.items()
    ]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return meta, frame


def timezone_name(label: str) -> str:
    """An IANA zone for the Meta Data 'Time Zone' label ('US/Eastern', 'UTC', 'GMT+8')."""
    label = (label or "").strip()
    m = re.fullmatch(r"(?:GMT|UTC)([+-])(\d{1,2})", label)
    if m:  # Etc/GMT zones have the sign inverted
        return f"Etc/GMT{'-' if m[1] == '+' else '+'}{int(m[2])}"
    if label in ("", "UTC", "GMT"):
        return "UTC"
    return {"US/Eastern": "America/New_York"}.get(label, label)
