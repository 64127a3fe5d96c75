"""Batch sources of the offline feature tables, per profile.

Local: Parquet files under FINFEAST_OFFLINE_DIR read by the DuckDB offline store. Prod: PostgreSQL
tables of the same name. Tables are written by `transforms` (see docs/architecture.md).
"""

import os

from feast import FileSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

PROFILE = os.environ.get("FINFEAST_PROFILE", "local")
OFFLINE_DIR = os.environ.get("FINFEAST_OFFLINE_DIR", "var/local/offline")


def offline_table_source(table: str, description: str):
    """The batch source for an offline table of the active profile."""
    if PROFILE == "prod":
        return PostgreSQLSource(
            name=table,
            table=table,
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
            description=description,
        )
    return FileSource(
        name=table,
        path=os.path.join(OFFLINE_DIR, f"{table}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
    )


features_daily_source = offline_table_source(
    "features_daily",
    "Daily bar features of the transforms catalog, one row per (symbol, session close).",
)
