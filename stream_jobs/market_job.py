"""The market stream job: bars -> bar-only catalog features + River anomaly scores, per symbol.

Why the catalog's own online operators: `transforms.OnlineFeatures` is the incremental twin of the
batch `transforms.compute_features` (proved equal by the catalog's parity tests), so a model sees
online exactly the numbers it was trained on. Each symbol gets its own operator and anomaly model;
a bar at or before the symbol's last event time (late or redelivered) changes no state and
emits nothing. Ticks update the last-trade view only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream_jobs.anomaly import AnomalyConfig, AnomalyScorer
from stream_jobs.consumer import Event, Output
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import MARKET_LOG
from stream_jobs.online_writer import Row
from stream_jobs.schemas import TOPIC_BARS
from stream_jobs.views import market_view, tick_view

TICK_LOG = "stream_trade_tick_log"


def _default_operator_factory() -> Callable[[], Any]:
    """One catalog state holder per symbol (capacity 1), so a symbol's state can be dropped alone."""
    from transforms import OnlineFeatures

    return lambda: OnlineFeatures(capacity=1)


def bar_record(value: Mapping[str, Any]) -> dict[str, Any]:
    """The bar mapping the catalog's online operator takes (event_timestamp as UTC epoch ns)."""
    return {
        "symbol": value["symbol"],
        "event_timestamp": value["event_time_ms"] * 1_000_000,
        "open": value["open"],
        "high": value["high"],
        "low": value["low"],
        "close": value["close"],
        "volume": value["volume"],
    }


class MarketProcessor:
    """Per-symbol catalog operators and anomaly models over `market.bars`."""

    name = "market"
    topics = (TOPIC_BARS,)

    def __init__(
        self,
        operator_factory: Callable[[], Any] | None = None,
        anomaly: AnomalyConfig | None = None,
        score_anomalies: bool = True,
    ) -> None:
        self.view = market_view()
        self.ticks = tick_view()
        self.outputs = (Output(self.view, MARKET_LOG), Output(self.ticks, TICK_LOG))
        self.operator_factory = operator_factory or _default_operator_factory()
        self.anomaly = AnomalyScorer(anomaly) if score_anomalies else None
        self.operators: dict[str, Any] = {}
        self.last_bar_ms: dict[str, int] = {}
        self.last_tick_ms: dict[str, int] = {}
        self.tick_counts: dict[str, int] = {}
        self.partition_of: dict[str, tuple[str, int]] = {}
        self._late = 0
        self._scored = 0
        self._anomalies = 0

    def warm_up(self) -> None:
        """Compile the catalog kernels now (numba JIT, seconds on a cold cache), not in the first batch.

        The bar is a throwaway constant on a discarded operator: nothing is emitted or stored.
        """
        op = self.operator_factory()
        op.update(
            {
                "symbol": "_warmup",
                "event_timestamp": 0,
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "volume": 0.0,
            }
        )

    def _bar(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        symbol = value["symbol"]
        ms = value["event_time_ms"]
        last = self.last_bar_ms.get(symbol)
        if last is not None and ms <= last:
            self._late += 1
            return None
        op = self.operators.get(symbol)
        if op is None:
            op = self.operators[symbol] = self.operator_factory()
        feats = op.update(bar_record(value))
        if feats is None:  # the operator rejected it as late
            self._late += 1
            return None
        self.last_bar_ms[symbol] = ms
        out = feats  # a fresh dict per call: extend it in place
        out["last_close"] = value["close"]
        out["last_volume"] = value["volume"]
        if self.anomaly is not None:
            scores = self.anomaly.update(value)
            out.update(scores)
            self._scored += 1
            self._anomalies += scores["is_anomaly"]
        return out

    def _tick(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        symbol = value["symbol"]
        ms = value["event_time_ms"]
        last = self.last_tick_ms.get(symbol)
        if (
            last is not None and ms < last
        ):  # ticks may share a millisecond; only older ones are late
            self._late += 1
            return None
        self.last_tick_ms[symbol] = ms
        count = self.tick_counts[symbol] = self.tick_counts.get(symbol, 0) + 1
        return {
            "last_trade_price": value["price"],
            "last_trade_size": value["size"],
            "tick_count": count,
        }

    def process(self, events: Sequence[Event]) -> dict[str, list[Row]]:
        bars: list[Row] = []
        ticks: list[Row] = []
        for e in events:
            value = e.value
            symbol = value["symbol"]
            self.partition_of[symbol] = (e.topic, e.partition)
            if value["kind"] == "bar":
                out = self._bar(value)
                if out is not None:
                    bars.append((symbol, value["event_time_ms"], out))
            else:
                out = self._tick(value)
                if out is not None:
                    ticks.append((symbol, value["event_time_ms"], out))
        return {self.view.name: bars, self.ticks.name: ticks}

    def warm(self, events: Sequence[Event]) -> None:
        late, scored, anomalies = self._late, self._scored, self._anomalies
        self.process(events)
        self._late, self._scored, self._anomalies = late, scored, anomalies

    def forget_partition(self, topic: str, partition: int) -> None:
        for symbol in [s for s, tp in self.partition_of.items() if tp == (topic, partition)]:
            self.operators.pop(symbol, None)
            self.last_bar_ms.pop(symbol, None)
            self.last_tick_ms.pop(symbol, None)
            self.tick_counts.pop(symbol, None)
            self.partition_of.pop(symbol, None)
            if self.anomaly is not None:
                self.anomaly.forget(symbol)

    def observe(self, metrics: JobMetrics) -> None:
        """Move this batch's late/anomaly counts into the job's metrics."""
        job = metrics.job
        if self._late:
            metrics.late.labels(job, TOPIC_BARS).inc(self._late)
        if self._scored:
            metrics.scored.labels(job).inc(self._scored)
            metrics.anomalies.labels(job).inc(self._anomalies)
            scored = metrics.value("finfeast_stream_scored_total")
            if scored:
                metrics.anomaly_rate.labels(job).set(
                    metrics.value("finfeast_stream_anomalies_total") / scored
                )
        self._late = self._scored = self._anomalies = 0
