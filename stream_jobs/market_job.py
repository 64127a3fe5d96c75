"""The market stream job: bars -> bar-only catalog features + River anomaly scores, per symbol.

Why the catalog's own online operators: `transforms.OnlineFeatures` is the incremental twin of the
batch `transforms.compute_features` (proved equal by the catalog's parity tests), so a model sees
online exactly the numbers it was trained on. Each partition gets its own operator (its
micro-batch path `update_arrays` folds a batch's bars in compiled code) and each symbol its own
anomaly model; a bar at or before the symbol's last event time (late or redelivered) changes no
state and emits nothing. Ticks update the last-trade view only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from stream_jobs.anomaly import AnomalyConfig, AnomalyScorer
from stream_jobs.consumer import Event, Output
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import MARKET_LOG
from stream_jobs.online_writer import Row
from stream_jobs.schemas import TOPIC_BARS
from stream_jobs.view_rows import FeatureBlock, ViewRows
from stream_jobs.views import ANOMALY_FEATURES, market_view, tick_view

TICK_LOG = "stream_trade_tick_log"
_PRICES = operator.itemgetter("open", "high", "low", "close", "volume")


def action_book(settings: Any) -> Any:
    """The corporate actions the stream applies (the offline `corporate_actions` table; none
    when it does not exist yet). Intraday bars are as traded, so every action applies: the
    state of a symbol is transformed at its ex-date's open, exactly as in `compute_features`."""
    from finfeast.offline import open_tables
    from transforms.adjustments import ACTIONS_TABLE, ActionBook

    tables = open_tables(settings)
    if not tables.exists(ACTIONS_TABLE):
        return ActionBook.empty()
    return ActionBook.from_frame(tables.read(ACTIONS_TABLE))


def _default_operator_factory(actions: Any = None, bar_frequency: Any = None) -> Callable[[], Any]:
    """One catalog state holder per partition: a partition's symbols can be dropped together."""
    from stream_jobs.views import BAR_FREQUENCY
    from transforms import OnlineFeatures

    freq = bar_frequency or BAR_FREQUENCY
    return lambda: OnlineFeatures(capacity=16, actions=actions, bar_frequency=freq)


class MarketProcessor:
    """Per-symbol catalog operators and anomaly models over `market.bars`."""

    name = "market"
    topics = (TOPIC_BARS,)

    def __init__(
        self,
        operator_factory: Callable[[], Any] | None = None,
        anomaly: AnomalyConfig | None = None,
        score_anomalies: bool = True,
        actions: Any = None,
        bar_frequency: Any = None,
    ) -> None:
        self.view = market_view()
        self.ticks = tick_view()
        self.outputs = (Output(self.view, MARKET_LOG), Output(self.ticks, TICK_LOG))
        self.operator_factory = operator_factory or _default_operator_factory(
            actions, bar_frequency
        )
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
        if self.anomaly is not None:
            self.anomaly.warm_up()

    def _bars(self, part: tuple[str, int], values: list[Mapping[str, Any]]) -> FeatureBlock | None:
        """Fold one partition's bars of a batch (micro-batch path of the catalog operator)."""
        from transforms.families import calendar

        op = self.operators.get(part)
        if op is None:
            op = self.operators[part] = self.operator_factory()
        n = len(values)
        symbols = np.array([v["symbol"] for v in values], dtype=object)
        ms = np.fromiter((v["event_time_ms"] for v in values), dtype=np.int64, count=n)
        # one pass over the dicts, then one contiguous row per field (the kernels' layout)
        o, h, low, c, vol = (
            np.array([_PRICES(v) for v in values], dtype=np.float64).reshape(n, 5).T.copy()
        )
        folded = op.update_arrays(symbols, ms * 1_000_000, o, h, low, c, vol)
        idx = folded.rows
        self._late += n - len(idx)
        if not len(idx):
            return None
        columns: dict[str, Any] = dict(zip(folded.names, folded.floats.T, strict=True))
        days, inverse = np.unique(folded.days, return_inverse=True)
        table = calendar.calendar_table(days)[inverse]
        for j, name in enumerate(calendar.NAMES):
            columns[name] = table[:, j]
        keys = symbols[idx]
        stamps = ms[idx]
        columns["last_close"] = c[idx]
        columns["last_volume"] = vol[idx]
        # folded rows of a symbol are in increasing event time: the last one is its newest
        self.last_bar_ms.update(zip(keys.tolist(), stamps.tolist(), strict=True))
        if self.anomaly is not None:
            scores = self.anomaly.score_arrays(  # one call per batch, in arrival order
                keys, c[idx], h[idx], low[idx], vol[idx]
            )
            columns.update(scores)
            self._scored += len(idx)
            self._anomalies += int(scores["is_anomaly"].sum())
        else:
            for name, dtype in ANOMALY_FEATURES:
                columns[name] = np.nan if dtype == "float64" else 0
        return FeatureBlock.from_columns(self.view, keys, stamps, columns)

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

    def process(self, events: Sequence[Event]) -> dict[str, ViewRows]:
        by_part: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
        ticks: list[Row] = []
        for e in events:
            value = e.value
            part = (e.topic, e.partition)
            self.partition_of[value["symbol"]] = part
            if value["kind"] == "bar":
                by_part.setdefault(part, []).append(value)
            else:
                out = self._tick(value)
                if out is not None:
                    ticks.append((value["symbol"], value["event_time_ms"], out))
        blocks = [
            b for part, values in by_part.items() if (b := self._bars(part, values)) is not None
        ]
        if blocks:
            bars = ViewRows.from_block(self.view, FeatureBlock.concat(blocks))
        else:
            bars = ViewRows.from_rows(self.view, [])
        return {self.view.name: bars, self.ticks.name: ViewRows.from_rows(self.ticks, ticks)}

    def warm(self, events: Sequence[Event]) -> None:
        late, scored, anomalies = self._late, self._scored, self._anomalies
        self.process(events)
        self._late, self._scored, self._anomalies = late, scored, anomalies

    def forget_partition(self, topic: str, partition: int) -> None:
        self.operators.pop((topic, partition), None)
        for symbol in [s for s, tp in self.partition_of.items() if tp == (topic, partition)]:
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
