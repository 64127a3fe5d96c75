"""The main job behind `finfeast run` and `make run`.

ingest -> validate (inside ingestion) -> features -> feast apply -> materialize -> short stream
replay -> summary. Each stage is timed; a failing optional stage (the stream replay) or a partially
failing ingest is reported in the summary and in the exit code (4 = partial) rather than hiding
the rest of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError, PartialFailure

SAMPLE_SYMBOLS = ("AAPL", "MSFT", "^GSPC")
TRAINING_SERVICE = "daily_v1"


@dataclass
class StageResult:
    name: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class RunReport:
    stages: list[StageResult] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return any(s.status not in ("ok", "skipped") for s in self.stages)

    def stage(self, name: str, fn: Callable[[], Any], optional: bool = False) -> Any:
        logger.info("stage {}: started", name)
        t0 = time.perf_counter()
        try:
            out = fn()
        except FinfeastError as exc:
            if not optional:
                raise
            self.stages.append(StageResult(name, "failed", time.perf_counter() - t0, str(exc)))
            logger.warning("stage {} failed: {}", name, exc)
            return None
        status = getattr(out, "status", "ok")
        self.stages.append(StageResult(name, status, time.perf_counter() - t0, _short(out)))
        self.outputs[name] = out
        logger.info("stage {}: {} in {:.1f}s", name, status, time.perf_counter() - t0)
        return out


def _short(out: Any) -> str:
    if hasattr(out, "shape") and hasattr(out, "columns"):
        return f"{out.shape[0]:,} rows x {out.shape[1]} columns"
    text = str(out) if out is not None else ""
    return text if len(text) < 120 else text[:117] + "..."


def _sample_online(settings: Settings, symbols: list[str]) -> Any:
    from finfeast.store import get_store

    store = get_store(settings)
    service = store.get_feature_service(TRAINING_SERVICE)
    return store.get_online_features(
        features=service, entity_rows=[{"symbol": s} for s in symbols]
    ).to_df()


def _sample_training_set(settings: Settings, symbols: list[str]) -> Any:
    from transforms.training import build_training_set

    frame = build_training_set(settings, TRAINING_SERVICE, symbols=symbols, max_rows=2000)
    # Features first, then the labels (which the helper joins from labels_daily, never features).
    labels = [c for c in frame.columns if c.startswith(("fwd_", "label_"))]
    return frame[[c for c in frame.columns if c not in labels] + labels]


def _packaged_stream_bars(settings: Settings, n: int = 500) -> Any:
    """Without a data directory there are no intraday files: the stream stage replays the last
    `n` real daily equity bars that PyPI packages ship (bokeh-sampledata), as stored in `bars`
    (stamped at their session close)."""
    from finfeast.offline import open_tables

    cols = ["symbol", "event_timestamp", "open", "high", "low", "close", "volume", "asset_class"]
    bars = open_tables(settings).read("bars", columns=cols)
    equities = bars[bars["asset_class"] == "equity"].drop(columns="asset_class")
    return equities.sort_values(["event_timestamp", "symbol"], kind="stable").tail(n)


def _pick_symbols(settings: Settings) -> list[str]:
    from finfeast.offline import open_tables

    present = set(
        open_tables(settings).read("features_daily", columns=["symbol"])["symbol"].unique()
    )
    chosen = [s for s in SAMPLE_SYMBOLS if s in present]
    return chosen or sorted(present)[:3]


def run_main_job(settings: Settings, sources: list[str] | None = None, stream: bool = True) -> int:
    """Run every stage and print the summary; returns the process exit code."""
    from finfeast.store import apply_repo, materialize
    from ingestion import run_ingest
    from transforms.build import build_feature_tables

    settings.apply_env()
    settings.ensure_dirs()
    report = RunReport()
    ingest = report.stage("ingest", lambda: run_ingest(settings, sources=sources))
    features = report.stage("features", lambda: build_feature_tables(settings))
    report.stage("apply", lambda: apply_repo(settings))
    report.stage("materialize", lambda: materialize(settings))
    if stream:
        from stream_jobs.replay import run_short_replay

        replay_bars = None if settings.data_dir is not None else _packaged_stream_bars(settings)
        if replay_bars is not None and replay_bars.empty:
            report.stages.append(
                StageResult("stream", "skipped", 0.0, "no intraday or packaged bars to replay")
            )
        else:
            report.stage(
                "stream", lambda: run_short_replay(settings, bars=replay_bars), optional=True
            )
    symbols = _pick_symbols(settings)
    online = report.stage("online sample", lambda: _sample_online(settings, symbols))
    training = report.stage("training set", lambda: _sample_training_set(settings, symbols))

    from finfeast.summary import print_summary

    print_summary(
        settings, report, ingest=ingest, features=features, online=online, training=training
    )
    if report.partial or getattr(ingest, "status", "ok") != "ok":
        print("status: partial (see the failed rows above)")
        return PartialFailure.exit_code
    print("status: ok")
    return 0
