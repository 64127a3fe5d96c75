"""On-demand feature view: the live price (request data) against the daily SMA 20.

Why on demand: the live price only exists at request time (a quote in the model's hands), while
the SMA is a daily batch feature; Feast joins them at read time, so the ratio never goes stale and
needs no storage. Null SMA (no daily data yet) or zero gives null.
"""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64
from feature_views import DAILY_VIEWS

from transforms import catalog

live_price_request = RequestSource(
    name="live_price_request",
    schema=[
        Field(name="live_price", dtype=Float64, description="Latest traded price at request time")
    ],
    description="Request data: the caller's latest price for the symbol.",
)


# The projection stays inline: a module-level FeatureView copy would be registered twice.
@on_demand_feature_view(
    # The projection is built inline: as a module attribute Feast would register the copy as a
    # second view with the daily view's name.
    sources=[DAILY_VIEWS[catalog.family_of("sma_20")][["sma_20"]], live_price_request],
    # live_vs_sma_20 = live_price / daily sma_20 - 1; live_minus_sma_20 = live_price - sma_20.
    # (No Field descriptions: Feast compares specified and inferred fields including them.)
    schema=[
        Field(name="live_vs_sma_20", dtype=Float64),
        Field(name="live_minus_sma_20", dtype=Float64),
    ],
    # pandas mode: Feast 0.67 drops python-mode outputs when full_feature_names=True, and
    # realtime_v1 must be read with full names (daily and stream views share feature names).
    mode="pandas",
    description="Live price (request data) against the latest daily SMA 20.",
)
def live_price_vs_sma(inputs: pd.DataFrame) -> pd.DataFrame:
    sma = inputs["sma_20"].astype("float64").where(lambda s: s != 0)
    price = inputs["live_price"].astype("float64")
    return pd.DataFrame({"live_vs_sma_20": price / sma - 1.0, "live_minus_sma_20": price - sma})
