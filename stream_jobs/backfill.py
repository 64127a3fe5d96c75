"""`finfeast stream backfill`: the stream views' offline rows for history, through the job's engine.

Why: `realtime_v1` training sets join the stream view's offline log, which only holds what the
job has seen live. The backfill feeds the historical intraday bars (the minute or hourly file of
`../shared/data/intraday/`, stamped at each bar's end) through the market job's own processor
(`MarketProcessor`: the catalog operators and River models), after bootstrapping each symbol from
its bars before `start` exactly as the live job does, and appends the rows to the same log table
in the same layout. So a backfilled row equals the row a replay through the job writes
(tests/stream_jobs/test_stream_faults.py); rows for bars the job also saw are deduplicated by
(symbol, event_timestamp) on read.

Minute bars go to the market view's log (`stream_market_log`). Hourly bars are a different bar
frequency, so by default they go to their own table (`stream_market_hourly_log`), never mixed into
the minute view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from stream_jobs.bootstrap import BarHistory, Bootstrapper
from stream_jobs.consumer import Event
from stream_jobs.offline_log import MARKET_LOG, OfflineLog
from stream_jobs.replay import BARS_FILE, HOURLY_FILE, load_intraday_bars
from stream_jobs.schemas import TOPIC_BARS

FILES = {"minute": BARS_FILE, "hourly": HOURLY_FILE}
DEFAULT_TABLES = {"minute": MARKET_LOG, "hourly": "stream_market_hourly_log"}
BAR_FREQUENCIES = {"minute": "1min", "hourly": "1h"}  # annualisation of each file's bars


@dataclass
class BackfillSummary:
    table: str
    bars: int
    rows: int
    bootstrapped_bars: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"backfill: {self.rows} rows from {self.bars} bars into {self.table} "
            f"({self.bootstrapped_bars} earlier bars folded first) in {self.seconds:.1f}s"
        )


def bar_events(bars: pd.DataFrame, partition: int = 0) -> list[Event]:
    """Decoded `bar` message values (what the job sees after `schemas.decode`)."""
    ms = bars["event_timestamp"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    out = []
    cols = zip(
        bars["symbol"], ms, bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"],
        strict=True,
    )  # fmt: skip
    for i, (s, t, o, h, lo, c, v) in enumerate(cols):
        value = {
            "kind": "bar",
            "symbol": s,
            "event_time_ms": int(t),
            "open": float(o),
            "high": float(h),
            "low": float(lo),
            "close": float(c),
            "volume": float(v),
        }
        out.append(Event(TOPIC_BARS, partition, i, value, int(t)))
    return out


def backfill(
    settings: Settings,
    frequency: str = "minute",
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    table: str | None = None,
    batch_size: int = 5000,
    score_anomalies: bool = True,
) -> BackfillSummary:
    """Append the market view's rows for the bars of [start, end) to the offline log."""
    from stream_jobs.market_job import MarketProcessor, action_book

    if frequency not in FILES:
        raise FinfeastError(f"unknown bar frequency {frequency!r}: minute or hourly")
    t0 = time.monotonic()
    file = FILES[frequency]
    table = table or DEFAULT_TABLES[frequency]
    everything = load_intraday_bars(
        settings.data_dir, symbols=symbols, start=None, end=None, file=file
    )
    bars = load_intraday_bars(settings.data_dir, symbols=symbols, start=start, end=end, file=file)
    if bars.empty:
        raise FinfeastError(
            f"no {frequency} bars for {symbols or 'any symbol'} in [{start}, {end})"
        )
    processor = MarketProcessor(
        score_anomalies=score_anomalies,
        actions=action_book(settings),
        bar_frequency=BAR_FREQUENCIES[frequency],
    )
    boot = Bootstrapper(BarHistory(everything, frequency))
    log = OfflineLog(settings)
    view = processor.view
    rows = folded = 0
    events = bar_events(bars)
    for i in range(0, len(events), batch_size):
        batch = events[i : i + batch_size]
        folded += boot.before_process(processor, batch)
        out = processor.process(batch)[view.name]
        if out.count:
            log.append_frame(table, view, out.frame())
            rows += out.count
    return BackfillSummary(table, len(bars), rows, folded, time.monotonic() - t0)
