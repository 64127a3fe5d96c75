"""Reference data: the `listings` feature view (symbol attributes from `ingestion`'s listings).

Name, GICS sector and sub-industry, exchange, ETF flag and S&P 500 date added, keyed by the
`symbol` entity. The table holds a current snapshot stamped at its snapshot time, so historical
(point-in-time) joins before that time correctly see nothing; online serving returns today's
attributes. No TTL: a listing stays valid until the next snapshot replaces it.
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
    description = "S&P 500 constituents + NASDAQ listings (ingestion source `listings`)."
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
    ],
    source=listings_source,
    online=True,
    description="Symbol reference attributes (current snapshot; see docs/ingestion.md).",
    tags={"kind": "reference", "source_table": "listings"},
)
