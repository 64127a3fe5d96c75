"""Feature services: the named, versioned feature sets models are trained and served with.

`daily_v1` is defined here; every `price_model_v<n>` is a committed file
`services/price_model_v<n>.yaml` written once by `finfeast select` (features, description, tags
with its held-out scores and the data it was selected on). Reading committed files only (never
`var/`) makes every clone's `feast apply` produce the same registry.
"""

from pathlib import Path

from feast import FeatureService
from feature_views import projections

from transforms.versioning import load_service_specs

daily_v1 = FeatureService(
    name="daily_v1",
    features=projections(["ret_1", "sma_20", "ema_12", "rsi_14", "atr_14"]),
    description="Starter daily set: 1-day return, SMA 20, EMA 12, RSI 14 (Wilder), ATR 14 (Wilder).",
    tags={"version": "1"},
)


def _selected_service(spec: dict) -> FeatureService:
    """A `price_model_v<n>` service from its committed file (immutable once written)."""
    try:
        features = projections(list(spec["features"]))
    except KeyError as exc:  # a feature removed from the catalog: say which file, not a traceback
        raise ValueError(
            f"services/{spec['name']}.yaml: {exc.args[0]}; a service is immutable, so models "
            "trained on it need the feature back, or a new selection (a new version)"
        ) from None
    return FeatureService(
        name=spec["name"],
        features=features,
        description=spec["description"],
        tags=dict(spec["tags"]),
    )


# Feast discovers objects as module attributes: one per committed selection version.
SELECTED = {
    spec["name"]: _selected_service(spec)
    for spec in load_service_specs(Path(__file__).with_name("services"))
}
globals().update(SELECTED)
