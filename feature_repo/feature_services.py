"""Feature services: the named, versioned feature sets models are trained and served with."""

from feast import FeatureService
from feature_views import projections

from transforms.versioning import saved_service_specs

daily_v1 = FeatureService(
    name="daily_v1",
    features=projections(["ret_1", "sma_20", "ema_12", "rsi_14", "atr_14"]),
    description="Starter daily set: 1-day return, SMA 20, EMA 12, RSI 14 (Wilder), ATR 14 (Wilder).",
    tags={"version": "1"},
)


def _selected_service(spec: dict) -> FeatureService:
    """A `price_model_v<n>` service saved by `finfeast select` (immutable once written)."""
    return FeatureService(
        name=spec["name"],
        features=projections(list(spec["features"])),
        description=spec["description"],
        tags=dict(spec["tags"]),
    )


# Feast discovers objects as module attributes: one per saved selection version.
globals().update({spec["name"]: _selected_service(spec) for spec in saved_service_specs()})
