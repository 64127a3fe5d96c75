"""The stream feature views' schemas, named once for the jobs, the writer and `feature_repo`.

Why here and import-light: `feature_repo/stream_features.py` (imported by `feast apply`) and the
stream jobs must agree on view names, join keys and feature names/dtypes; this module has no
Feast or pandas import so both sides can use it cheaply. Bar features come from the transforms
catalog (`transforms.catalog.bar_features()`), so a catalog feature is named in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

MARKET_VIEW = "stream_market"
# The market stream's bars are one-minute bars: its catalog features are annualised and its
# vwap_session restricted to the regular session for that frequency (transforms/frequency.py).
BAR_FREQUENCY = "1min"
TICK_VIEW = "stream_trade_tick"
ACCOUNT_VIEW = "stream_account"

# Live values of the latest bar, next to the catalog features computed from it.
LIVE_BAR_FEATURES: tuple[tuple[str, str], ...] = (
    ("last_close", "float64"),
    ("last_volume", "float64"),
)
ANOMALY_FEATURES: tuple[tuple[str, str], ...] = (
    ("bar_log_return", "float64"),
    ("anomaly_score", "float64"),
    ("is_anomaly", "int64"),
    ("drift_flag", "int64"),
    ("drift_count", "int64"),
    ("anomaly_warm", "int64"),
)
TICK_FEATURES: tuple[tuple[str, str], ...] = (
    ("last_trade_price", "float64"),
    ("last_trade_size", "float64"),
    ("tick_count", "int64"),
)
ACCOUNT_FEATURES: tuple[tuple[str, str], ...] = (
    ("trade_count_1h", "int64"),
    ("notional_1h", "float64"),
    ("trade_count_1d", "int64"),
    ("notional_1d", "float64"),
    ("net_exposure", "float64"),
    ("gross_exposure", "float64"),
    ("realized_pnl", "float64"),
    ("unrealized_pnl", "float64"),
    ("concentration", "float64"),
    ("open_positions", "int64"),
)


@dataclass(frozen=True)
class ViewSpec:
    """What the writer needs to know about a feature view: name, join key, feature dtypes."""

    name: str
    join_key: str
    features: tuple[tuple[str, str], ...]  # (feature name, dtype: float64 | int64 | bool)

    @property
    def feature_names(self) -> list[str]:
        return [f for f, _ in self.features]


def bar_catalog_features() -> tuple[tuple[str, str], ...]:
    """(name, dtype) of every bar-only catalog feature, in catalog order."""
    from transforms import catalog

    return tuple((f.name, f.dtype) for f in catalog.bar_features())


def market_view() -> ViewSpec:
    return ViewSpec(
        MARKET_VIEW, "symbol", bar_catalog_features() + LIVE_BAR_FEATURES + ANOMALY_FEATURES
    )


def tick_view() -> ViewSpec:
    return ViewSpec(TICK_VIEW, "symbol", TICK_FEATURES)


def account_view() -> ViewSpec:
    return ViewSpec(ACCOUNT_VIEW, "account_id", ACCOUNT_FEATURES)
