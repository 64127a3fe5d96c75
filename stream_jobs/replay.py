"""Producers: replay the real intraday minute bars and SPY trade ticks into `market.bars`.

Why replay: the data directory holds one coherent real week (SPY, AIG, BAC, IBM minute bars,
2013-10-04..11) and one full day of SPY trade ticks. Replaying them in event-time order at a chosen
speed-up exercises the stream jobs with real prices and real gaps. Event time is preserved by
default, stamped at each bar's END (so online features match the batch computation on the same
bars, and no value is visible before its bar closed); `shift_to_now` moves
the whole replay so that its first event happens now, keeping the spacing.

`run_short_replay` is the self-contained stage of `finfeast run`: embedded broker, a short real
replay (bars plus simulated account activity), the market job until drained, counts returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from stream_jobs.schemas import TOPIC_BARS, encode

BARS_FILE = "intraday/lean_equity_minute_trade_bars.csv.gz"
HOURLY_FILE = "intraday/lean_equity_hourly_bars.csv.gz"
# Bar length per file (data README §3: `timestamp` is the bar START, a bar covers
# [timestamp, timestamp + period); LEAN labels the first hourly bar 09:00 although it spans
# 09:30-10:00, so every hourly bar still ends one hour after its label).
BAR_LENGTH = {BARS_FILE: pd.Timedelta(minutes=1), HOURLY_FILE: pd.Timedelta(hours=1)}
TICKS_FILE = "intraday/lean_spy_trade_ticks_20131007.csv.gz"
REPLAY_SYMBOLS = ("SPY", "AIG", "BAC", "IBM")
REPLAY_START = "2013-10-04"
REPLAY_END = "2013-10-12"  # exclusive

Message = tuple[bytes, bytes, int]  # (key, value, event_time_ms)


def _data_path(data_dir: Path | None, name: str) -> Path:
    if data_dir is None:
        raise FinfeastError("no data directory: set FINFEAST_DATA_DIR to the real market data")
    path = Path(data_dir) / name
    if not path.exists():
        raise FinfeastError(f"intraday data not found: {path}")
    return path


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def load_intraday_bars(
    data_dir: Path | None,
    symbols: Iterable[str] | None = REPLAY_SYMBOLS,
    start: str | None = REPLAY_START,
    end: str | None = REPLAY_END,
    file: str = BARS_FILE,
) -> pd.DataFrame:
    """Real intraday bars (symbol, event_timestamp UTC, OHLCV) in event-time order.

    `event_timestamp` is the bar END (file `timestamp` + the bar length): the knowledge time of a
    bar (docs/architecture.md), so no streamed value is visible before its bar closed. `start` /
    `end` (UTC dates or instants) select on the bar START, so a day keeps all its bars (the last
    minute bar of a day ends at 20:00 New York = 00:00 UTC the next day); None = no bound
    (`symbols=None`: every symbol of the file).
    """
    df = pd.read_csv(_data_path(data_dir, file))
    bar_start = pd.to_datetime(df["timestamp"], utc=True)
    df["event_timestamp"] = bar_start + BAR_LENGTH[file]
    keep = pd.Series(True, index=df.index)
    if symbols is not None:
        keep &= df["symbol"].isin(list(symbols))
    if start is not None:
        keep &= bar_start >= _utc(start)
    if end is not None:
        keep &= bar_start < _utc(end)
    out = df.loc[keep, ["symbol", "event_timestamp", "open", "high", "low", "close", "volume"]]
    out = out.astype({"volume": "float64"})
    return out.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)


def load_spy_ticks(data_dir: Path | None) -> pd.DataFrame:
    """Real SPY trade ticks of 2013-10-07 (symbol, event_timestamp UTC, price, size)."""
    df = pd.read_csv(_data_path(data_dir, TICKS_FILE), dtype={"sale_condition": str})
    df["event_timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    return df[["symbol", "event_timestamp", "price", "size"]].reset_index(drop=True)


def _epoch_ms(ts: pd.Series) -> pd.Series:
    return ts.astype("datetime64[ms, UTC]").astype("int64")


def bar_messages(bars: pd.DataFrame, shift_ms: int = 0) -> Iterator[Message]:
    """Schema-v1 `bar` messages keyed by symbol."""
    ms = _epoch_ms(bars["event_timestamp"]) + shift_ms
    cols = zip(
        bars["symbol"],
        ms,
        bars["open"],
        bars["high"],
        bars["low"],
        bars["close"],
        bars["volume"],
        strict=True,
    )
    for sym, t, o, h, lo, c, v in cols:
        value = encode(
            "bar",
            {
                "symbol": sym,
                "event_time_ms": int(t),
                "open": float(o),
                "high": float(h),
                "low": float(lo),
                "close": float(c),
                "volume": float(v),
            },
        )
        yield sym.encode(), value, int(t)


def tick_messages(ticks: pd.DataFrame, shift_ms: int = 0) -> Iterator[Message]:
    """Schema-v1 `tick` messages keyed by symbol."""
    ms = _epoch_ms(ticks["event_timestamp"]) + shift_ms
    for sym, t, p, s in zip(ticks["symbol"], ms, ticks["price"], ticks["size"], strict=True):
        value = encode(
            "tick", {"symbol": sym, "event_time_ms": int(t), "price": float(p), "size": float(s)}
        )
        yield sym.encode(), value, int(t)


def shift_for_now(first_event_ms: int) -> int:
    """Offset that moves `first_event_ms` to the current wall-clock time."""
    return int(time.time() * 1000) - first_event_ms


@dataclass
class ProduceSummary:
    topic: str
    messages: int
    seconds: float

    def __str__(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        return f"produced {self.messages} messages to {self.topic} in {self.seconds:.2f}s ({rate:,.0f}/s)"


def produce(
    producer: Any,
    topic: str,
    messages: Iterable[Message],
    speed: float = 0.0,
    limit: int | None = None,
) -> ProduceSummary:
    """Send messages in order; `speed` > 0 paces them at `speed` x real time (0 = as fast as possible)."""
    t0 = time.monotonic()
    first_ms: int | None = None
    n = 0
    for key, value, ms in messages:
        if limit is not None and n >= limit:
            break
        if speed > 0:
            first_ms = ms if first_ms is None else first_ms
            due = t0 + (ms - first_ms) / 1000 / speed
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.05))
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        n += 1
    left = producer.flush(60)
    if left:
        raise FinfeastError(f"{left} messages to {topic} were not acknowledged")
    return ProduceSummary(topic, n, time.monotonic() - t0)


@dataclass
class StreamSummary:
    """What the short replay did: messages produced per topic and each job's loop summary."""

    produced: dict[str, int]
    jobs: dict[str, Any]
    bootstrap: str
    seconds: float
    status: str = "ok"

    def __str__(self) -> str:
        prod = ", ".join(f"{t}={n}" for t, n in self.produced.items())
        jobs = "; ".join(
            f"{name}: {s.events_in} in, {s.rows_out} rows, {s.dlq} dlq"
            for name, s in self.jobs.items()
        )
        return f"produced {prod}; {jobs} ({self.seconds:.1f}s)"


def produce_market_and_accounts(
    bootstrap: str, bars: pd.DataFrame, speed: float = 0.0, shift_ms: int = 0
) -> dict[str, int]:
    """Produce bars to market.bars and simulated account activity to trades/positions."""
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config
    from stream_jobs.schemas import TOPIC_POSITIONS, TOPIC_TRADES, TOPICS
    from stream_jobs.simulator import account_messages

    ensure_topics(bootstrap, TOPICS)
    producer = Producer(producer_config(bootstrap))
    counts = {
        TOPIC_BARS: produce(producer, TOPIC_BARS, bar_messages(bars, shift_ms), speed).messages
    }
    by_topic: dict[str, list[Message]] = {TOPIC_TRADES: [], TOPIC_POSITIONS: []}
    for topic, msg in account_messages(bars, shift_ms=shift_ms):
        by_topic[topic].append(msg)
    for topic, msgs in by_topic.items():
        counts[topic] = produce(producer, topic, msgs).messages
    return counts


def run_short_replay(
    settings: Settings,
    limit: int = 2000,
    jobs: tuple[str, ...] = ("market", "accounts"),
    bars: pd.DataFrame | None = None,
) -> StreamSummary:
    """The `finfeast run` stream stage: broker, a short real replay, both jobs until drained.

    Uses FINFEAST_KAFKA_BOOTSTRAP when set, otherwise starts the embedded broker for the duration.
    The first `limit` real minute bars of the replay week (or of `bars`, e.g. the packaged daily
    bars on a fresh clone without intraday files) are produced (event time preserved), plus
    simulated account activity at those prices; the Feast repo must have been applied.
    """
    import uuid
    from contextlib import nullcontext

    from stream_jobs.broker import EmbeddedBroker
    from stream_jobs.jobs import JobOptions, run_job

    t0 = time.monotonic()
    if bars is None:
        bars = load_intraday_bars(settings.data_dir)
    bars = bars.head(limit)
    broker_cm = nullcontext(None) if settings.kafka_bootstrap else EmbeddedBroker()
    with broker_cm as broker:
        bootstrap = settings.kafka_bootstrap or broker.bootstrap
        produced = produce_market_and_accounts(bootstrap, bars)
        run_id = uuid.uuid4().hex[:8]
        summaries = {}
        for job in jobs:
            options = JobOptions(
                bootstrap=bootstrap,
                group=f"finfeast.replay.{job}.{run_id}",
                idle_exit_seconds=1.5,
                max_seconds=300,
            )
            summaries[job] = run_job(settings, job, options)
    return StreamSummary(produced, summaries, bootstrap, time.monotonic() - t0)
