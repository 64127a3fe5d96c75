"""Online/offline consistency: stream features of a replayed day vs the batch catalog.

Why: the guarantee that matters to a model is that the stream job serves the numbers the batch
backfill trains on. This replays one real trading day through the market job (real broker, real
stores), reads back the rows the job logged, and compares every bar's every catalog feature with
`transforms.compute_features` over the symbols' full history up to that day (the stream
bootstraps new symbols from that history): equal when both are null, or when
|stream - batch| <= tol * max(1, |batch|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finfeast.config import Settings
from stream_jobs.offline_log import MARKET_LOG
from stream_jobs.replay import REPLAY_SYMBOLS, load_intraday_bars
from stream_jobs.views import bar_catalog_features

DEFAULT_DAY = "2013-10-07"
TOLERANCE = 1e-9


@dataclass
class ConsistencyReport:
    """Per-feature and overall agreement between stream and batch values."""

    day: str
    bars: int
    rows_found: int
    values_compared: int
    values_equal: int
    tolerance: float
    mismatches_by_feature: dict[str, int] = field(default_factory=dict)
    missing_rows: int = 0
    features: int = 0

    @property
    def rate(self) -> float:
        return self.values_equal / self.values_compared if self.values_compared else 0.0

    @property
    def status(self) -> str:
        return "ok" if self.rate == 1.0 and not self.missing_rows else "mismatch"

    def __str__(self) -> str:
        worst = sorted(self.mismatches_by_feature.items(), key=lambda kv: -kv[1])[:5]
        extra = f"; worst: {worst}" if worst else ""
        return (
            f"consistency {self.day}: {self.rate:.6%} of {self.values_compared} values equal within "
            f"{self.tolerance:g} ({self.features} features) over {self.rows_found}/{self.bars} bars "
            f"({self.missing_rows} bars missing){extra}"
        )


def day_bars(
    settings: Settings, day: str, symbols: tuple[str, ...] = REPLAY_SYMBOLS
) -> pd.DataFrame:
    end = (pd.Timestamp(day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return load_intraday_bars(settings.data_dir, symbols=symbols, start=day, end=end)


def compare(
    stream: pd.DataFrame, batch: pd.DataFrame, day: str, tol: float = TOLERANCE
) -> ConsistencyReport:
    """Compare stream rows with batch rows on (symbol, event_timestamp) for every catalog feature."""
    names = [n for n, _ in bar_catalog_features() if n in batch.columns]
    key = ["symbol", "event_timestamp"]
    s = stream.copy()
    b = batch.copy()
    for df in (s, b):
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
    merged = b[key + names].merge(
        s[key + names], on=key, how="left", suffixes=("_b", "_s"), indicator=True
    )
    found = merged["_merge"] == "both"
    report = ConsistencyReport(
        day, len(b), int(found.sum()), 0, 0, tol, missing_rows=int((~found).sum())
    )
    report.features = len(names)
    m = merged[found]
    for name in names:
        bv = pd.to_numeric(m[f"{name}_b"], errors="coerce").to_numpy(dtype="float64")
        sv = pd.to_numeric(m[f"{name}_s"], errors="coerce").to_numpy(dtype="float64")
        both_null = np.isnan(bv) & np.isnan(sv)
        close = np.abs(sv - bv) <= tol * np.maximum(1.0, np.abs(bv))
        equal = both_null | np.nan_to_num(close, nan=False).astype(bool)
        report.values_compared += len(bv)
        report.values_equal += int(equal.sum())
        bad = int((~equal).sum())
        if bad:
            report.mismatches_by_feature[name] = bad
    return report


def batch_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The batch catalog over exactly `bars` (no earlier history)."""
    from stream_jobs.views import BAR_FREQUENCY
    from transforms import compute_features

    return compute_features(bars, bar_frequency=BAR_FREQUENCY)


def history_batch_features(settings: Settings, bars: pd.DataFrame) -> pd.DataFrame:
    """The batch catalog at each of `bars`, computed over the symbols' FULL intraday history up
    to the last of them: what the stream must match, since a symbol new to the stream starts
    from state bootstrapped from that history (`stream_jobs.bootstrap`)."""
    from stream_jobs.market_job import action_book
    from stream_jobs.views import BAR_FREQUENCY
    from transforms import compute_features

    symbols = sorted(bars["symbol"].unique())
    history = load_intraday_bars(settings.data_dir, symbols=symbols, start=None, end=None)
    history = history[history["event_timestamp"] <= bars["event_timestamp"].max()]
    full = compute_features(history, bar_frequency=BAR_FREQUENCY, actions=action_book(settings))
    keys = pd.MultiIndex.from_frame(bars[["symbol", "event_timestamp"]])
    mask = pd.MultiIndex.from_frame(full[["symbol", "event_timestamp"]]).isin(keys)
    return full[mask].reset_index(drop=True)


def check_consistency(
    settings: Settings, day: str = DEFAULT_DAY, tol: float = TOLERANCE
) -> ConsistencyReport:
    """Replay `day` through the market job on an embedded broker and compare with the batch catalog."""
    import uuid

    from confluent_kafka import Producer

    from stream_jobs.broker import EmbeddedBroker, ensure_topics, producer_config
    from stream_jobs.jobs import JobOptions, run_job
    from stream_jobs.offline_log import OfflineLog
    from stream_jobs.replay import bar_messages, produce
    from stream_jobs.schemas import TOPIC_BARS

    bars = day_bars(settings, day)
    if bars.empty:
        raise ValueError(f"no replay bars on {day}")
    run_id = uuid.uuid4().hex[:8]
    # Always its own embedded broker: only this day's bars may reach the job.
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap
        ensure_topics(bootstrap, [TOPIC_BARS])
        produce(Producer(producer_config(bootstrap)), TOPIC_BARS, bar_messages(bars))
        run_job(
            settings,
            "market",
            JobOptions(
                bootstrap=bootstrap,
                group=f"finfeast.check.{run_id}",
                idle_exit_seconds=1.5,
                max_seconds=600,
            ),
        )
    log = OfflineLog(settings).read(MARKET_LOG)
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    lo = bars["event_timestamp"].min()
    hi = bars["event_timestamp"].max()
    stream = log[(ts >= lo) & (ts <= hi)]
    return compare(stream, history_batch_features(settings, bars), day, tol)


def is_close(a: float | None, b: float | None, tol: float = TOLERANCE) -> bool:
    """Scalar version of the comparison rule (used in tests and messages)."""
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    return abs(a - b) <= tol * max(1.0, abs(b))
