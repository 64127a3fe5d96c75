"""Fixtures of the ingestion tests: a full local ingest, data-dir variants, local HTTP servers.

Every server here is a real HTTP server on a loopback port started by the test session; the
Alpha Vantage one replays the recorded responses in `api_samples/alphavantage/` and injects the
failures a test asks for (HTTP 500, a timeout, rate-limit bodies, truncated JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from finfeast.config import Settings

ALL_SOURCES = [
    "lean_daily",
    "lean_actions",
    "stocks_5yr",
    "arch_indices",
    "bokeh_daily",
    "vix_oil",
    "fx",
    "listings",
    "alphavantage",
    "trading",
]


@pytest.fixture(scope="session")
def full_local(settings_factory) -> tuple[Settings, object]:
    """Every source ingested once into a local-profile workdir (Alpha Vantage: no key)."""
    from ingestion import run_ingest

    patch = pytest.MonkeyPatch()
    patch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    try:
        settings = settings_factory("local", "ing_full")
        return settings, run_ingest(settings, progress=False)
    finally:
        patch.undo()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # noqa: D401 - silence the default logging
        pass


class FileServer:
    """Serves files of a directory over HTTP; counts requests per path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: dict[str, int] = {}
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path.lstrip("/")
                server.requests[path] = server.requests.get(path, 0) + 1
                f = server.root / path
                if not f.is_file():
                    self.send_response(404)
                    self.end_headers()
                    return
                data = f.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    server = FileServer(tmp_path / "www")
    server.root.mkdir()
    yield server
    server.close()


class AlphaVantageServer:
    """Replays the recorded Alpha Vantage responses; `fail` queues failures for the next calls.

    Failure kinds: "500", "timeout" (answers after `slow_seconds`), "note" / "information" /
    "error" (the recorded HTTP-200 error bodies), "truncated" (half a JSON document).
    """

    FILES = {
        ("TIME_SERIES_DAILY", "MSFT"): "TIME_SERIES_DAILY_MSFT_compact_2018-08-16.json",
        (
            "TIME_SERIES_INTRADAY",
            "MSFT",
            "15min",
        ): "TIME_SERIES_INTRADAY_MSFT_15min_full_2018-04-11.json",
        (
            "TIME_SERIES_INTRADAY",
            "MSFT",
            "1min",
        ): "TIME_SERIES_INTRADAY_MSFT_1min_compact_2017-12-18.json",
        ("FX_DAILY", "EUR", "USD"): "FX_DAILY_EUR_USD_compact_2018-08-22.json",
    }
    ERRORS = {
        "note": "error_rate_limit_note.json",
        "information": "error_premium_information.json",
        "error": "error_invalid_api_call.json",
    }

    def __init__(self, samples: Path, slow_seconds: float = 2.0) -> None:
        self.samples = samples
        self.slow_seconds = slow_seconds
        self.failures: deque[str] = deque()
        self.calls: list[dict[str, str]] = []
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                server.calls.append(q)
                kind = server.failures.popleft() if server.failures else None
                if kind == "500":
                    return self._send(500, b'{"error": "internal"}')
                if kind == "timeout":
                    time.sleep(server.slow_seconds)
                if kind in server.ERRORS:
                    return self._send(200, (server.samples / server.ERRORS[kind]).read_bytes())
                body = server.body_for(q)
                if body is None:
                    return self._send(200, (server.samples / server.ERRORS["error"]).read_bytes())
                if kind == "truncated":
                    body = body[: len(body) // 2]
                self._send(200, body)

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/query"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def body_for(self, q: dict[str, str]) -> bytes | None:
        fn = q.get("function", "")
        if q.get("apikey", "") == "":
            return json.dumps(
                {"Error Message": "the parameter apikey is invalid or missing"}
            ).encode()
        candidates = [
            (fn, q.get("symbol", "")),
            (fn, q.get("symbol", ""), q.get("interval", "")),
            (fn, q.get("from_symbol", ""), q.get("to_symbol", "")),
        ]
        for key in candidates:
            if key in self.FILES:
                return (self.samples / self.FILES[key]).read_bytes()
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def av_server(data_dir: Path) -> Iterator[AlphaVantageServer]:
    server = AlphaVantageServer(data_dir / "api_samples" / "alphavantage")
    yield server
    server.close()


@pytest.fixture
def av_env(av_server: AlphaVantageServer, monkeypatch: pytest.MonkeyPatch) -> AlphaVantageServer:
    """Environment pointing the alphavantage source at the local server, fast retries."""
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "test-key")
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", av_server.url)
    monkeypatch.setenv("ALPHAVANTAGE_CALLS_PER_MINUTE", "0")
    monkeypatch.setenv("ALPHAVANTAGE_BACKOFF", "0.01")
    monkeypatch.setenv("ALPHAVANTAGE_TIMEOUT", "0.5")
    monkeypatch.setenv("ALPHAVANTAGE_CACHE_TTL", "0")
    return av_server
