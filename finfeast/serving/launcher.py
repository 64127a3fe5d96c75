"""Run the feature server: Feast's own app (`feast serve`'s) in tuned gunicorn + uvicorn workers.

The app is `feast.feature_server.get_app(store)`, exactly what `feast serve` runs, over the
profile's online store (finfeast's plugin), inside `ServingApp`'s thin metrics/serving-log
middleware. Why these defaults (measured, see bench/RESULTS.md "## Serving"): stock `feast serve` recycles its
single worker every ~1,000 requests (`--max-requests 1000`), which stalls for 1-1.6 s and resets
connections, and writes an access-log line per request. Here: one worker per core, worker
recycling off, no access log, keep-alive 30 s (clients reuse connections), registry cache TTL
60 s, uvloop + httptools. The app is built in the master before forking (so the registry and
`import feast` are paid once); per-worker state is created after the fork.
"""

from __future__ import annotations

import atexit
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from finfeast.serving.app import AppOptions


@dataclass(frozen=True)
class ServeOptions:
    """Process-level options of `finfeast serve`."""

    host: str = "127.0.0.1"
    port: int = 6566
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    keep_alive_s: int = 30
    max_requests: int = 0  # 0 = never recycle workers
    access_log: bool = False
    timeout_s: int = 60
    app: AppOptions = field(default_factory=AppOptions)

    def gunicorn_settings(self) -> dict[str, object]:
        return {
            "bind": f"{self.host}:{self.port}",
            "workers": self.workers,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "keepalive": self.keep_alive_s,
            "max_requests": self.max_requests,
            "max_requests_jitter": 0,
            "accesslog": "-" if self.access_log else None,
            "timeout": self.timeout_s,
            "graceful_timeout": 10,
            "preload_app": True,
        }


def serve(repo_path: Path, feature_store_yaml: Path, options: ServeOptions) -> None:
    """Start the server in this process (blocks until SIGTERM/SIGINT)."""
    from finfeast.serving.metrics import prepare_multiprocess_dir

    metrics_dir = prepare_multiprocess_dir()  # before prometheus_client / feast are imported
    _remove_at_exit(metrics_dir)
    import gunicorn.app.base
    from feast import FeatureStore

    from finfeast.serving.app import ServingApp

    store = serving_store(FeatureStore)(repo_path=str(repo_path), fs_yaml_file=feature_store_yaml)
    app = ServingApp(store, options.app)

    class _Application(gunicorn.app.base.BaseApplication):
        def load_config(self) -> None:
            for key, value in options.gunicorn_settings().items():
                self.cfg.set(key, value)

        def load(self):  # noqa: ANN202 - gunicorn API
            return app

    _Application().run()


def serving_store(base: type) -> type:
    """`FeatureStore` whose cached `get_feature_service` is memoized per registry refresh.

    Why: Feast's handler calls `store.get_feature_service(name, allow_cache=True)` on every
    `/get-online-features` request for a feature service, and Feast rebuilds the object from the
    registry proto each time (`FeatureService.from_proto`, typeguard-checked): about 5 ms per
    request for a 50-feature service here, 5x the rest of the request. The memo is dropped when
    the registry cache refreshes (the server refreshes it every `--registry-ttl` seconds), so a
    new `feast apply` is seen exactly when it is without the memo.
    """

    class ServingFeatureStore(base):  # type: ignore[misc, valid-type]
        def get_feature_service(self, name: str, allow_cache: bool = False):  # noqa: ANN201
            if not allow_cache:
                return super().get_feature_service(name, allow_cache=False)
            stamp = getattr(self.registry, "cached_registry_proto_created", None)
            memo = self.__dict__.setdefault("_finfeast_services", {})
            hit = memo.get(name)
            if hit is not None and stamp is not None and hit[0] == stamp:
                return hit[1]
            service = super().get_feature_service(name, allow_cache=True)
            stamp = getattr(self.registry, "cached_registry_proto_created", None)
            if len(memo) > 1000:
                memo.clear()
            memo[name] = (stamp, service)
            return service

    return ServingFeatureStore


def _remove_at_exit(path: Path) -> None:
    """Delete the metrics directory when the master exits (forked workers inherit atexit)."""
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
