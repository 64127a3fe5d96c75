"""Reference data: the `listings` feature view (symbol attributes from `ingestion`'s listings).

Name, GICS sector and sub-industry, exchange, ETF flag, S&P 500 date added and S&P 500
membership, keyed by the `symbol` entity. The table holds point-in-time change rows built from
the S&P 500 constituents history (one row when a symbol enters or leaves the list or an
attribute changes, stamped at the snapshot's commit time; see ingestion/listings.py), so
`get_historical_features` at t returns the sector and membership known at t (GOOGL in 2015:
Information Technology) and nothing before the first snapshot (2012-12-27); online serving
returns the latest row. No TTL: a listing stays valid until a later row replaces it.
Local profile: the Parquet table under FINFEAST_OFFLINE_DIR; prod: the PostgreSQL table.
"""

import os
from datetime import timedelta

from data_sources import OFFLINE_DIR as _OFFLINE_DIR
from data_sources import PROFILE as _PROFILE
from entities import symbol
from feast import FeatureView, Field, FileSource
from feast.types import Bool, String


def _listings_source():
    description = (
        "Point-in-time S&P 500 constituents history + NASDAQ listings (ingestion source "
        "`listings`)."
    )
    if _PROFILE == "prod":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        return PostgreSQLSource(
            name="listings_source",
            table="listings",
            timestamp_field="event_timestamp",
            created_timestamp_column="ingested_at",
            description=description,
        )
    return FileSource(
        name="listings_source",
        path=os.path.join(_OFFLINE_DIR, "listings.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="ingested_at",
        description=description,
    )


listings_source = _listings_source()

listings = FeatureView(
    name="listings",
    entities=[symbol],
    ttl=timedelta(0),  # 0 = no expiry in Feast
    schema=[
        Field(name="name", dtype=String, description="company / security name"),
        Field(name="sector", dtype=String, description="GICS sector (S&P 500 members only)"),
        Field(name="sub_industry", dtype=String, description="GICS sub-industry"),
        Field(name="exchange", dtype=String, description="NASDAQ when NASDAQ-listed"),
        Field(name="is_etf", dtype=Bool, description="NASDAQ ETF flag"),
        Field(name="date_added", dtype=String, description="ISO date added to the S&P 500"),
        Field(
            name="in_sp500",
            dtype=Bool,
            description="listed in the latest S&P 500 constituents snapshot known at the time",
        ),
    ],
    source=listings_source,
    online=True,
    description="Symbol reference attributes as known at each time (constituents history).",
    # its own family: `in_sp500` here is the raw snapshot flag, not the catalog feature (float,
    # null before the first snapshot) of the same name in daily_market_context
    tags={"family": "listings", "kind": "reference", "source_table": "listings"},
)
