"""Feature services: the named, versioned feature sets models are trained and served with."""

from feast import FeatureService
from feature_views import projections

daily_v1 = FeatureService(
    name="daily_v1",
    features=projections(["ret_1", "sma_20", "ema_12", "rsi_14", "atr_14"]),
    description="Starter daily set: 1-day return, SMA 20, EMA 12, RSI 14 (Wilder), ATR 14 (Wilder).",
    tags={"version": "1"},
)
