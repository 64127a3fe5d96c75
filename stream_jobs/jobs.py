"""Build and run the stream jobs for a profile (the CLI, the main job and tests call these).

Why here: wiring a job (processor + fast online writer of the profile + offline log + metrics +
consumer loop) is the same everywhere; only the knobs differ.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from stream_jobs.consumer import LoopConfig, LoopSummary, StreamLoop
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import OfflineLog
from stream_jobs.online_writer import open_writer

JOBS = ("market", "accounts")


@dataclass
class JobOptions:
    """What a caller may choose when running a job."""

    bootstrap: str
    group: str | None = None
    batch_size: int = 1000
    metrics_port: int | None = None  # None = no HTTP endpoint, 0 = a free port
    idle_exit_seconds: float | None = None
    max_events: int | None = None
    max_seconds: float | None = None
    write_offline: bool = True
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    # Checkpoints (stream_jobs.checkpoint) and bootstrap from offline history (stream_jobs.bootstrap)
    checkpoints: bool = True
    checkpoint_every_seconds: float = 10.0
    checkpoint_every_messages: int = 50_000
    history: str = "intraday"  # intraday | bars | none
    rebuild_timeout: float = 60.0


def make_processor(job: str, settings: Settings | None = None) -> Any:
    """The job's processor; the market job applies the profile's corporate actions (none
    without `settings`)."""
    if job == "market":
        from stream_jobs.market_job import MarketProcessor, action_book

        return MarketProcessor(actions=action_book(settings) if settings is not None else None)
    if job == "accounts":
        from stream_jobs.account_job import AccountProcessor

        return AccountProcessor()
    raise FinfeastError(f"unknown stream job {job!r}: choose one of {', '.join(JOBS)}")


def check_online_tables(settings: Settings, view_names: list[str]) -> None:
    """Local profile: the SQLite tables of the stream views exist only after `finfeast apply`."""
    if settings.profile != "local":
        return
    import sqlite3

    path = settings.online_path
    missing = list(view_names)
    if path.exists():
        with sqlite3.connect(path) as conn:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        missing = [v for v in view_names if f"{settings.project}_{v}" not in names]
    if missing:
        raise FinfeastError(
            f"online tables for {', '.join(missing)} do not exist: run `finfeast apply` first"
        )


def build_loop(settings: Settings, job: str, options: JobOptions) -> StreamLoop:
    processor = make_processor(job, settings)
    check_online_tables(settings, [o.view.name for o in processor.outputs])
    settings.ensure_dirs()
    config = LoopConfig(
        bootstrap=options.bootstrap,
        group=options.group or f"finfeast.{settings.project}.{job}",
        batch_size=options.batch_size,
        idle_exit_seconds=options.idle_exit_seconds,
        max_events=options.max_events,
        max_seconds=options.max_seconds,
        write_offline=options.write_offline,
        consumer_overrides=options.consumer_overrides,
        dlq_dir=str(settings.profile_dir / "dlq"),
        rebuild_timeout=options.rebuild_timeout,
    )
    metrics = JobMetrics(job)
    checkpoints, bootstrap = _state_sources(settings, config.group, options)
    return StreamLoop(
        processor,
        open_writer(settings),
        OfflineLog(settings),
        config,
        metrics,
        checkpoints=checkpoints,
        bootstrap=bootstrap,
    )


def _state_sources(settings: Settings, group: str, options: JobOptions) -> tuple[Any, Any]:
    """The job's checkpoint writer and its bootstrap from offline history (None = off)."""
    from stream_jobs.bootstrap import Bootstrapper, intraday_history, offline_bars_history
    from stream_jobs.checkpoint import Checkpointer, CheckpointPolicy, open_checkpoints

    checkpoints = None
    if options.checkpoints:
        policy = CheckpointPolicy(
            options.checkpoint_every_seconds, options.checkpoint_every_messages
        )
        checkpoints = Checkpointer(open_checkpoints(settings), group, policy)
    sources = {"intraday": intraday_history, "bars": offline_bars_history}
    if options.history not in (*sources, "none"):
        raise FinfeastError(f"unknown history source {options.history!r}: intraday, bars or none")
    history = sources[options.history](settings) if options.history in sources else None
    return checkpoints, Bootstrapper(history) if history is not None else None


def run_job(
    settings: Settings, job: str, options: JobOptions, handle_signals: bool = False
) -> LoopSummary:
    """Run one job until stopped (SIGINT/SIGTERM when `handle_signals`), drained or a limit hits."""
    loop = build_loop(settings, job, options)
    if options.metrics_port is not None:
        # FINFEAST_METRICS_HOST=0.0.0.0 in containers, so Prometheus can scrape from its own one.
        host = os.environ.get("FINFEAST_METRICS_HOST", "127.0.0.1")
        port = loop.metrics.serve(options.metrics_port, addr=host)
        print(f"{job}: metrics on http://{host}:{port}/metrics", flush=True)
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: loop.stop())
    try:
        return loop.run()
    finally:
        loop.metrics.stop()
        loop.writer.close()
