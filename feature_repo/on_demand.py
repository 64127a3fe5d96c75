"""On-demand feature view: the live price (request data) against the daily SMA 20.

Why on demand: the live price only exists at request time (a quote in the model's hands), while
the SMA is a daily batch feature; Feast joins them at read time, so the ratio never goes stale and
needs no storage. Python mode keeps the online path free of pandas overhead.
"""

from typing import Any

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
    sources=[DAILY_VIEWS[catalog.family_of("sma_20")][["sma_20"]], live_price_request],
    # live_vs_sma_20 = live_price / daily sma_20 - 1; live_minus_sma_20 = live_price - sma_20.
    # (No Field descriptions: Feast compares specified and inferred fields including them.)
    schema=[
        Field(name="live_vs_sma_20", dtype=Float64),
        Field(name="live_minus_sma_20", dtype=Float64),
    ],
    mode="python",
    description="Live price (request data) against the latest daily SMA 20.",
)
def live_price_vs_sma(inputs: dict[str, Any]) -> dict[str, Any]:
    ratios, diffs = [], []
    for price, sma in zip(inputs["live_price"], inputs["sma_20"], strict=True):
        ok = price is not None and sma is not None and sma == sma and sma != 0
        ratios.append(price / sma - 1.0 if ok else None)
        diffs.append(price - sma if ok else None)
    return {"live_vs_sma_20": ratios, "live_minus_sma_20": diffs}
