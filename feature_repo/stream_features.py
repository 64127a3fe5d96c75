"""Stream feature views fed by the stream jobs, their push sources, and `realtime_v1`.

Why push sources: the stream jobs compute features outside Feast and write them online (a fast
path producing Feast's own layout) and to an offline log; each push source's batch source is that
log (Parquet locally, a PostgreSQL table in prod), so training sets can be built from exactly the
rows that were served. View schemas come from `stream_jobs.views` (bar features from the
transforms catalog), so the jobs and Feast cannot disagree on names.
"""

import os
from datetime import timedelta

from data_sources import OFFLINE_DIR, PROFILE, offline_table_source
from entities import symbol
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination
from feast.types import Bool, Float64, Int64
from feature_views import projections
from on_demand import live_price_vs_sma

from stream_jobs import views

# A stream value older than this is stale for live use (status OUTSIDE_MAX_AGE online).
STREAM_TTL = timedelta(days=1)

_DTYPES = {"float64": Float64, "int64": Int64, "bool": Bool}

account_id = Entity(
    name="account_id",
    join_keys=["account_id"],
    value_type=ValueType.STRING,
    description="Simulated trading account (SIMnnnn); all account data is simulated.",
)


def _log_source(log_table: str, description: str):  # noqa: ANN202 - a Feast data source
    """The stream log as a batch source. Local: the DIRECTORY of the log's Parquet parts
    (`stream_jobs.offline_log`, appended per batch; the finfeast offline store reads directories
    and not-yet-existing paths); prod: the PostgreSQL table."""
    if PROFILE == "prod":
        return offline_table_source(log_table, description)
    return FileSource(
        name=log_table,
        path=os.path.join(OFFLINE_DIR, log_table),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
    )


def _push_source(name: str, log_table: str, description: str) -> PushSource:
    return PushSource(
        name=name,
        batch_source=_log_source(log_table, description),
        description=description,
    )


stream_market_push = _push_source(
    "stream_market_push",
    "stream_market_log",
    "Minute-bar catalog features and River anomaly scores written by the market stream job.",
)
stream_trade_tick_push = _push_source(
    "stream_trade_tick_push", "stream_trade_tick_log", "Last trade tick per symbol (market job)."
)
stream_account_push = _push_source(
    "stream_account_push",
    "stream_account_log",
    "Per-account rolling activity, exposure and PnL (simulated accounts, account job).",
)


def _view(
    spec: views.ViewSpec, entity: Entity, source: PushSource, description: str
) -> FeatureView:
    return FeatureView(
        name=spec.name,
        entities=[entity],
        ttl=STREAM_TTL,
        schema=[Field(name=n, dtype=_DTYPES[d]) for n, d in spec.features],
        source=source,
        online=True,
        description=description,
        tags={"kind": "stream"},
    )


stream_market = _view(
    views.market_view(),
    symbol,
    stream_market_push,
    "Bar-only catalog features on the live minute-bar stream, last bar values, anomaly score and drift flag.",
)
stream_trade_tick = _view(views.tick_view(), symbol, stream_trade_tick_push, "Last trade tick.")
stream_account = _view(
    views.account_view(),
    account_id,
    stream_account_push,
    "Simulated accounts: 1 h / 1 d trade count and notional, exposure, PnL, concentration.",
)

realtime_v1 = FeatureService(
    name="realtime_v1",
    features=[
        *projections(["ret_1", "sma_20", "rsi_14", "atr_14"]),
        stream_market,
        live_price_vs_sma,
    ],
    description=(
        "Daily batch features + live minute-bar stream features + live price vs daily SMA. "
        "Daily and stream views share catalog feature names: read with full_feature_names=True."
    ),
    tags={"version": "1"},
    # Served rows are logged by `finfeast serve` (finfeast/serving/feature_log.py) as Parquet;
    # `finfeast audit` compares them with the backfill.
    logging_config=LoggingConfig(
        destination=FileLoggingDestination(
            path=os.path.join(OFFLINE_DIR, "serving_logs", "realtime_v1")
        )
    ),
)

account_realtime_v1 = FeatureService(
    name="account_realtime_v1",
    features=[stream_account],
    description="Live simulated-account features.",
    tags={"version": "1"},
)
