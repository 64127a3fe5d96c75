"""The feature server's ASGI app: Feast's own app in a thin middleware (metrics, serving logs).

Why a middleware and nothing more: every route, `/get-online-features` included, is Feast's own
handler over the configured online store (finfeast's plugin makes it fast, and its
`InvalidOnlineRequest` makes Feast answer malformed requests with 422 naming the problem). The
middleware only watches:
- `GET /metrics`: Prometheus exposition summed over workers;
- every HTTP request is counted by route and status (`finfeast_serving_requests_total`), also
  when Feast's app re-raises an exception after sending its error response (Starlette's
  `ServerErrorMiddleware` does that, which is why a counter inside Feast's app misses them);
  an exception raised before any response was sent becomes a JSON 500, counted;
- serving logs: for a feature service with a logging config, the rows of a 200 response go to
  `feature_log.ServingLogger` (Feast 0.67's Python server does not log them itself).
Per-worker state (the log flusher) is created at lifespan startup, after gunicorn forks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from feast import FeatureStore

ONLINE_ROUTE = "/get-online-features"
JSON_HEADERS = [(b"content-type", b"application/json")]
# Feast's routes keep their name in the metrics; anything else is "other" (bounded labels).
KNOWN_ROUTES = frozenset(
    {
        ONLINE_ROUTE,
        "/push",
        "/write-to-online-store",
        "/health",
        "/materialize",
        "/materialize-incremental",
        "/search",
        "/retrieve-online-documents",
        "/metrics",
        "/docs",
        "/openapi.json",
    }
)


@dataclass(frozen=True)
class AppOptions:
    """Behaviour of the app inside each worker."""

    registry_ttl_s: int = 60
    log_flush_s: float = 5.0
    serving_logs: bool = True


class ServingApp:
    """ASGI callable wrapping Feast's FastAPI app (see module docstring)."""

    def __init__(self, store: FeatureStore, options: AppOptions | None = None) -> None:
        from feast.feature_server import get_app

        self.store = store
        self.options = options or AppOptions()
        self.feast_app = get_app(store, registry_ttl_sec=self.options.registry_ttl_s)
        self.serving_log: Any = None
        self.metrics: Any = None

    # ---- lifecycle -----------------------------------------------------------------------
    def startup(self) -> None:
        from finfeast.serving.metrics import server_metrics

        _forget_inherited_connections(self.store)
        self.metrics = server_metrics()
        if self.options.serving_logs:
            from finfeast.serving.feature_log import ServingLogger

            m = self.metrics
            self.serving_log = ServingLogger(
                self.store,
                flush_interval_s=self.options.log_flush_s,
                on_written=lambda name, n: m.logged_rows.labels(name).inc(n),
                on_error=lambda name, n: m.log_errors.labels(name).inc(n),
            )
            self.serving_log.start()

    def shutdown(self) -> None:
        if self.serving_log is not None:
            self.serving_log.stop()

    # ---- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.feast_app(scope, self._lifespan_receive(receive), send)
            return
        if kind != "http":
            await self.feast_app(scope, receive, send)
            return
        if self.metrics is None:  # no lifespan (e.g. an embedding app): still count
            from finfeast.serving.metrics import server_metrics

            self.metrics = server_metrics()
        path = scope["path"]
        if path == "/metrics" and scope["method"] == "GET":
            from finfeast.serving.metrics import render_metrics

            await _respond(send, 200, render_metrics(), [(b"content-type", b"text/plain")])
            self._count(path, 200, time.perf_counter())
            return
        await self._watched(scope, receive, send, path)

    def _lifespan_receive(self, receive: Any) -> Any:
        async def wrapped() -> dict:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
            return message

        return wrapped

    async def _watched(self, scope: dict, receive: Any, send: Any, path: str) -> None:
        """Run Feast's handler; count its status whatever happens; tap rows for serving logs."""
        t0 = time.perf_counter()
        status = 0
        tap = path == ONLINE_ROUTE and self._logging_wanted()
        request_body = b""
        chunks: list[bytes] = []
        if tap:
            request_body = await _read_body(receive)
            receive = _replay(request_body, receive)

        async def watching_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif tap and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.feast_app(scope, receive, watching_send)
        except Exception as exc:  # noqa: BLE001 - counted and answered, never lost
            if status == 0:
                logger.exception(f"unhandled error on {path}")
                await _respond(send, 500, b'{"detail": "internal error"}', JSON_HEADERS)
                status = 500
            else:  # Feast already answered (e.g. 422/404 for a FeastError): only log
                logger.debug(f"{path} answered {status}: {exc!r}")
        finally:
            self._count(path, status or 500, t0)
        if tap and status == 200:
            self._log_rows(request_body, b"".join(chunks))

    def _logging_wanted(self) -> bool:
        return self.serving_log is not None and self.serving_log.any_logged()

    def _log_rows(self, request_body: bytes, response_body: bytes) -> None:
        """Serving logs for a 200 answer to a logged feature service."""
        import orjson

        from finfeast.serving.responses import OnlineRows

        try:
            request = orjson.loads(request_body)
            service = request.get("feature_service")
            if not service or not self.serving_log.wants(service):
                return
            entities = request["entities"]
            rows = OnlineRows.from_http(orjson.loads(response_body), list(entities))
            # Feast does not echo request data (e.g. a live price) back: take it from the request.
            extra = {k: v for k, v in entities.items() if k != rows.join_key}
            rows.request_data = {**extra, **(rows.request_data or {})}
            full = bool(request.get("full_feature_names", False))
            columns = self._log_columns(service, rows.feature_names, full)
        except Exception as exc:  # noqa: BLE001 - logging must never fail a served request
            logger.warning(f"serving log skipped: {exc}")
            return
        self.serving_log.record(service, rows, columns, datetime.now(UTC))

    def _log_columns(self, service_name: str, names: list[str], full: bool) -> list[str]:
        """Feast log column (`<view>__<feature>`) of each response feature name."""
        if full:
            return names
        service = self.store.get_feature_service(service_name, allow_cache=True)
        owners: dict[str, list[str]] = {}
        for proj in service.feature_view_projections:
            for feat in proj.features:
                owners.setdefault(feat.name, []).append(proj.name_to_use())
        ambiguous = [n for n in names if len(owners.get(n, [])) != 1]
        if ambiguous:
            raise ValueError(f"names {ambiguous[:3]} are ambiguous: request full_feature_names")
        return [f"{owners[n][0]}__{n}" for n in names]

    def _count(self, path: str, status: int, t0: float) -> None:
        m = self.metrics
        if m is None:
            return
        route = path if path in KNOWN_ROUTES else "other"
        m.requests.labels(route, str(status)).inc()
        m.latency.labels(route).observe(time.perf_counter() - t0)


def _forget_inherited_connections(store: FeatureStore) -> None:
    """After gunicorn forks, drop SQL registry connections the master opened (a connection used
    from two processes corrupts both); SQLAlchemy opens fresh ones per worker."""
    registry = store.registry
    for name in ("write_engine", "read_engine"):
        engine = getattr(registry, name, None)
        if engine is not None:
            engine.dispose(close=False)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, original: Any) -> Any:
    """A receive() that yields the already-read body once, then defers to the real channel."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _respond(send: Any, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
