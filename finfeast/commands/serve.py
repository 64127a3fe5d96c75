"""`finfeast serve`, `finfeast monitor`, `finfeast audit`: serving and its operations.

    finfeast serve [--workers 2 --port 6566]                  Feast's feature server, tuned workers
    finfeast monitor [--current-days 30 --baseline-days 365]  data-quality report + metrics file
    finfeast audit [--service realtime_v1 --hours 24]         served values vs backfill

Import-light: Feast, pandas and gunicorn are imported inside the handlers only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from finfeast.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the feature server (Feast's HTTP app, tuned workers, /metrics)",
        description="Feast's own HTTP feature server (what `feast serve` runs: "
        "/get-online-features, /push, /health, ...) over the profile's online store "
        "(finfeast's plugin), with tuned gunicorn workers (no recycling, no access log, "
        "keep-alive), request counts by route and status at /metrics, and serving logs for "
        "feature services with a logging config.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=6566, help="port (default 6566)")
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU cores)"
    )
    p.add_argument("--keep-alive", type=int, default=30, help="keep-alive seconds (default 30)")
    p.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="recycle a worker after N requests (default 0 = never; stock Feast uses 1000)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    p.add_argument(
        "--registry-ttl", type=int, default=60, help="registry cache TTL seconds (default 60)"
    )
    p.add_argument("--no-serving-logs", action="store_true", help="do not log served features")
    p.add_argument(
        "--log-flush-seconds",
        type=float,
        default=5.0,
        help="flush serving logs this often (default 5 s)",
    )
    p.add_argument(
        "--feature-store-yaml",
        type=Path,
        help="serve another Feast repo (its feature_store.yaml) instead of the profile's",
    )
    p.set_defaults(handler=_serve)

    m = sub.add_parser(
        "monitor",
        parents=[common],
        help="data-quality report per feature view (null rates, freshness, drift)",
        description="Per feature view: null rates, freshness and distribution drift (PSI) of "
        "the latest window against a baseline window, from Feast's offline monitoring "
        "statistics. Writes JSON, Markdown and a Prometheus text file to the reports folder.",
    )
    m.add_argument("--current-days", type=int, default=30, help="current window (default 30)")
    m.add_argument("--baseline-days", type=int, default=365, help="baseline window (default 365)")
    m.add_argument("--view", action="append", help="only this feature view (repeatable)")
    m.add_argument("--psi-alert", type=float, default=0.2, help="PSI drift alert level")
    m.add_argument("--out", type=Path, help="output folder (default: <workdir>/<profile>/reports)")
    m.add_argument("--feature-store-yaml", type=Path, help="another Feast repo's yaml")
    m.set_defaults(handler=_monitor)

    a = sub.add_parser(
        "audit",
        parents=[common],
        help="compare logged served values with the backfill (mismatch rate)",
        description="Reads a feature service's serving logs and compares every logged value "
        "with the offline value for the same entity at the logged feature timestamp "
        "(point-in-time join); prints and writes the mismatch rate per feature.",
    )
    a.add_argument("--service", default="realtime_v1", help="feature service (realtime_v1)")
    a.add_argument("--hours", type=float, default=24.0, help="look back this many hours")
    a.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance")
    a.add_argument("--out", type=Path, help="output folder (default: reports folder)")
    a.add_argument("--feature-store-yaml", type=Path, help="another Feast repo's yaml")
    a.set_defaults(handler=_audit)


def _store_paths(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path]:
    from finfeast.errors import FinfeastError

    yaml = args.feature_store_yaml
    if yaml is not None:
        yaml = yaml.resolve()
        if not yaml.is_file():
            raise FinfeastError(f"feature store yaml {yaml} does not exist")
        return yaml.parent, yaml
    settings.apply_env()
    settings.ensure_dirs()
    return settings.repo_path, settings.feature_store_yaml


def _open_store(args: argparse.Namespace, settings: Settings):
    if args.feature_store_yaml is None:
        from finfeast.store import get_store

        return get_store(settings)
    from feast import FeatureStore

    repo, yaml = _store_paths(args, settings)
    return FeatureStore(repo_path=str(repo), fs_yaml_file=yaml)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from finfeast.errors import FinfeastError
    from finfeast.serving.app import AppOptions
    from finfeast.serving.launcher import ServeOptions, serve

    if args.workers is not None and args.workers < 1:
        raise FinfeastError("--workers must be at least 1")
    repo, yaml = _store_paths(args, settings)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers or os.cpu_count() or 1,
        keep_alive_s=args.keep_alive,
        max_requests=args.max_requests,
        access_log=args.access_log,
        app=AppOptions(
            registry_ttl_s=args.registry_ttl,
            serving_logs=not args.no_serving_logs,
            log_flush_s=args.log_flush_seconds,
        ),
    )
    serve(repo, yaml, options)
    return 0


def _reports_dir(args: argparse.Namespace, settings: Settings) -> Path:
    out = args.out or settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    return out


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.serving.quality import QualityOptions, run_quality_report, write_quality_report

    store = _open_store(args, settings)
    report = run_quality_report(
        store,
        QualityOptions(
            current_days=args.current_days,
            baseline_days=args.baseline_days,
            views=args.view,
            psi_alert=args.psi_alert,
        ),
    )
    paths = write_quality_report(report, _reports_dir(args, settings))
    print(report.summary())
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime, timedelta

    from finfeast.serving.audit import audit_serving_logs, write_audit_report

    store = _open_store(args, settings)
    end = datetime.now(UTC)
    report = audit_serving_logs(
        store, args.service, end - timedelta(hours=args.hours), end, rtol=args.rtol
    )
    paths = write_audit_report(report, _reports_dir(args, settings))
    print(report.summary())
    print("written: " + ", ".join(str(p) for p in paths))
    return 0
