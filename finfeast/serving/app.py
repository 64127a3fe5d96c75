"""The feature server's ASGI app: Feast's own app plus a lean `/get-online-features` and `/metrics`.

Why a wrapper instead of a fork: every Feast endpoint (`/push`, `/health`, `/materialize`, ...)
keeps Feast's behaviour by delegation. Only two routes are ours:
- `POST /get-online-features` answers from `RedisOnlineReader` (same JSON as Feast's handler,
  optional hot-entity cache, serving logs for services with a logging config). A request the lean
  path does not cover (on-demand views, non-Redis stores, version metadata, several join keys) is
  replayed to Feast's handler unchanged, so clients never see a difference except speed.
- `GET /metrics`: Prometheus exposition summed over workers (ours and Feast's request metrics).
Per-worker state (Redis connections, the cache, the log flusher) is created at lifespan startup,
after gunicorn forks.
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


@dataclass(frozen=True)
class AppOptions:
    """Behaviour of the app inside each worker."""

    lean: bool = True  # serve /get-online-features from the lean Redis reader when possible
    cache_ms: float = 0.0  # hot-entity cache freshness bound; 0 = no cache
    cache_entries: int = 10_000
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
        self.reader: Any = None
        self.serving_log: Any = None
        self.metrics: Any = None

    # ---- lifecycle -----------------------------------------------------------------------
    def startup(self) -> None:
        from finfeast.serving.metrics import server_metrics

        _forget_inherited_connections(self.store)
        self.metrics = server_metrics()
        _enable_feast_request_metrics()
        if self.options.lean:
            self.reader = self._make_reader()
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

    def _make_reader(self) -> Any:
        from finfeast.serving.hot_cache import HotEntityCache
        from finfeast.serving.online_reader import RedisOnlineReader, UnsupportedRequest

        cache = None
        if self.options.cache_ms > 0:
            cache = HotEntityCache(self.options.cache_ms, self.options.cache_entries)
        try:
            return RedisOnlineReader(
                self.store, cache=cache, plan_ttl_s=self.options.registry_ttl_s
            )
        except UnsupportedRequest as exc:
            logger.info(f"lean read path off ({exc}); serving through Feast")
            return None

    def shutdown(self) -> None:
        if self.serving_log is not None:
            self.serving_log.stop()

    # ---- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.feast_app(scope, self._lifespan_receive(receive), send)
            return
        if kind == "http":
            path = scope["path"]
            if path == ONLINE_ROUTE and scope["method"] == "POST" and self.metrics is not None:
                await self._online(scope, receive, send)
                return
            if path == "/metrics" and scope["method"] == "GET":
                from finfeast.serving.metrics import render_metrics

                body = render_metrics()
                await _respond(send, 200, body, [(b"content-type", b"text/plain; version=0.0.4")])
                return
        await self.feast_app(scope, receive, send)

    def _lifespan_receive(self, receive: Any) -> Any:
        async def wrapped() -> dict:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
            return message

        return wrapped

    async def _online(self, scope: dict, receive: Any, send: Any) -> None:
        import orjson

        from finfeast.serving.online_reader import UnsupportedRequest

        t0 = time.perf_counter()
        body = await _read_body(receive)
        request = None
        try:
            request = _parse_online_request(orjson.loads(body))
            rows, plan = self._read(request)
        except UnsupportedRequest:
            await self._delegate(scope, body, receive, send, t0, request)
            return
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            payload = orjson.dumps({"detail": str(exc)})
            await _respond(send, 422, payload, JSON_HEADERS)
            self._count("lean", 422, t0)
            return
        except Exception as exc:  # noqa: BLE001 - Feast errors (unknown service, ...) become JSON
            logger.debug(f"lean read failed, Feast answers: {exc}")
            await self._delegate(scope, body, receive, send, t0, None)
            return
        await _respond(send, 200, orjson.dumps(rows.to_http()), JSON_HEADERS)
        self._count("lean", 200, t0, len(rows.entities))
        service = request["feature_service"]
        if service and self.serving_log is not None and self.serving_log.wants(service):
            self.serving_log.record(service, rows, plan.log_columns, datetime.now(UTC))

    async def _delegate(
        self, scope: dict, body: bytes, receive: Any, send: Any, t0: float, request: dict | None
    ) -> None:
        """Replay the request to Feast's own handler, counting its status and logging its rows."""
        status = 500
        service = (request or {}).get("feature_service")
        log = (
            service is not None and self.serving_log is not None and self.serving_log.wants(service)
        )
        chunks: list[bytes] = []

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif log and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.feast_app(scope, _replay(body, receive), counting_send)
        self._count("feast", status, t0)
        if log and status == 200:
            self._log_feast_response(request, b"".join(chunks))

    def _log_feast_response(self, request: dict, body: bytes) -> None:
        """Serving logs for requests Feast answered (e.g. services with on-demand views)."""
        import orjson

        from finfeast.serving.online_reader import OnlineRows

        try:
            rows = OnlineRows.from_http(orjson.loads(body), list(request["entities"]))
            # Feast does not echo request data (e.g. a live price) back: take it from the request.
            extra = {k: v for k, v in request["entities"].items() if k != rows.join_key}
            rows.request_data = {**extra, **(rows.request_data or {})}
            columns = self._log_columns(
                request["feature_service"], rows.feature_names, request["full_feature_names"]
            )
        except Exception as exc:  # noqa: BLE001 - logging must never fail a served request
            logger.warning(f"serving log skipped for {request['feature_service']}: {exc}")
            return
        self.serving_log.record(request["feature_service"], rows, columns, datetime.now(UTC))

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

    def _read(self, request: dict) -> tuple[Any, Any]:
        from finfeast.serving.online_reader import UnsupportedRequest

        reader = self.reader
        if reader is None:
            raise UnsupportedRequest("lean read path is off")
        plan = reader.plan(
            feature_service=request["feature_service"],
            features=request["features"],
            full_feature_names=request["full_feature_names"],
        )
        entities = request["entities"]
        if list(entities) != [plan.join_key]:
            raise UnsupportedRequest("entity columns differ from the plan's join key")
        cache = reader.cache
        before = (cache.hits, cache.misses) if cache is not None else None
        rows = reader.read(plan, entities[plan.join_key])
        if before is not None:
            self.metrics.cache_hits.inc(cache.hits - before[0])
            self.metrics.cache_misses.inc(cache.misses - before[1])
        return rows, plan

    def _count(self, path: str, status: int, t0: float, entities: int | None = None) -> None:
        m = self.metrics
        if m is None:
            return
        m.requests.labels(ONLINE_ROUTE, path, str(status)).inc()
        m.latency.labels(path).observe(time.perf_counter() - t0)
        if entities is not None:
            m.entities.observe(entities)


def _parse_online_request(payload: Any) -> dict:
    """Validate the JSON body (Feast's GetOnlineFeaturesRequest fields)."""
    from finfeast.serving.online_reader import UnsupportedRequest

    if not isinstance(payload, dict):
        raise ValueError("request body must be a JSON object")
    if payload.get("include_feature_view_version_metadata") or payload.get("request_context"):
        raise UnsupportedRequest("version metadata / request context need the Feast path")
    unknown = set(payload) - {
        "feature_service",
        "features",
        "entities",
        "full_feature_names",
        "include_feature_view_version_metadata",
        "request_context",
        "query_embedding",
        "query_string",
    }
    if unknown:
        raise UnsupportedRequest(f"unknown fields {sorted(unknown)}")
    service = payload.get("feature_service")
    features = payload.get("features")
    if (service is None) == (features is None):
        raise ValueError("give exactly one of 'feature_service' or 'features'")
    if features is not None and (
        not isinstance(features, list) or not all(isinstance(f, str) for f in features)
    ):
        raise ValueError("'features' must be a list of 'view:feature' strings")
    entities = payload.get("entities")
    if not isinstance(entities, dict) or not entities:
        raise ValueError("'entities' must map a join key to a list of values")
    lengths = {len(v) if isinstance(v, list) else -1 for v in entities.values()}
    if -1 in lengths or len(lengths) != 1:
        raise ValueError("every 'entities' value must be a list, all of one length")
    return {
        "feature_service": service,
        "features": features,
        "entities": entities,
        "full_feature_names": bool(payload.get("full_feature_names", False)),
    }


def _forget_inherited_connections(store: FeatureStore) -> None:
    """After gunicorn forks, drop SQL registry connections the master opened (a connection used
    from two processes corrupts both); SQLAlchemy opens fresh ones per worker."""
    registry = getattr(store, "_registry", None) or getattr(store, "registry", None)
    for name in ("write_engine", "read_engine"):
        engine = getattr(registry, name, None)
        if engine is not None:
            engine.dispose(close=False)


def _enable_feast_request_metrics() -> None:
    """Turn on Feast's own request/push counters (written to the shared multiprocess dir)."""
    from feast import metrics as feast_metrics

    if not feast_metrics._config.enabled:
        feast_metrics._config = feast_metrics._MetricsFlags(
            enabled=True, request=True, online_features=True, push=True, materialization=True
        )


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
