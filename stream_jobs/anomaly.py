"""River anomaly scores and drift flags per symbol, learned online from the bar stream.

Why River: the models learn one event at a time with O(1) state, the same shape as the stream job.
Per symbol, `MinMaxScaler | HalfSpaceTrees` scores each bar's (log return, log volume, relative
range) before learning it (score-then-learn: a bar never scores against a model that has already
seen it, so there is no look-ahead), and ADWIN watches the log returns for a distribution change.
HalfSpaceTrees scores 0 until its first window (250 bars) fills; those bars are flagged `warm=0`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_THRESHOLD = 0.97
HST_WINDOW = 250


@dataclass
class AnomalyConfig:
    """Model settings; `seed` makes scores reproducible run to run."""

    threshold: float = DEFAULT_THRESHOLD
    n_trees: int = 10
    height: int = 8
    window_size: int = HST_WINDOW
    adwin_delta: float = 0.002
    seed: int = 42


class SymbolAnomalyModel:
    """Anomaly score and drift state of one symbol."""

    def __init__(self, config: AnomalyConfig) -> None:
        from river import anomaly, drift, preprocessing

        self.config = config
        self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=config.n_trees,
            height=config.height,
            window_size=config.window_size,
            seed=config.seed,
        )
        self.adwin = drift.ADWIN(delta=config.adwin_delta)
        self.prev_close: float | None = None
        self.seen = 0
        self.drifts = 0

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any]:
        close = float(bar["close"])
        ret = math.log(close / self.prev_close) if self.prev_close else 0.0
        self.prev_close = close
        x = {
            "ret": ret,
            "log_volume": math.log1p(float(bar["volume"])),
            "range": (float(bar["high"]) - float(bar["low"])) / close,
        }
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        self.adwin.update(ret)
        drift = bool(self.adwin.drift_detected)
        self.drifts += drift
        self.seen += 1
        warm = self.seen > self.config.window_size
        return {
            "bar_log_return": ret,
            "anomaly_score": score,
            "is_anomaly": int(warm and score >= self.config.threshold),
            "drift_flag": int(drift),
            "drift_count": self.drifts,
            "anomaly_warm": int(warm),
        }


class AnomalyScorer:
    """Per-symbol models, created on first sight of a symbol."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self.models: dict[str, SymbolAnomalyModel] = {}

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any]:
        symbol = bar["symbol"]
        model = self.models.get(symbol)
        if model is None:
            model = self.models[symbol] = SymbolAnomalyModel(self.config)
        return model.update(bar)

    def forget(self, symbol: str) -> None:
        self.models.pop(symbol, None)
