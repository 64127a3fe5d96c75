"""Batch sources of the offline feature tables, per profile.

Local: Parquet under the offline dir, read by finfeast's DuckDB offline store plugin (relative
paths resolve against this directory, so plain `feast` works from here with nothing exported);
finfeast points other workdirs (tests, FINFEAST_WORKDIR) at theirs through FINFEAST_OFFLINE_DIR.
Prod: PostgreSQL tables of the same name. Tables are written by `transforms` (see
docs/architecture.md); stream logs are directories of Parquet parts written by the stream jobs.

The profile: FINFEAST_PROFILE when set, else `prod` when this process was started on the prod YAML
(`feast -f feature_store_prod.yaml ...`), else `local`.
"""

import os
import sys

from feast import FileSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)


def _profile() -> str:
    explicit = os.environ.get("FINFEAST_PROFILE", "")
    if explicit:
        return explicit
    invoked = [os.environ.get("FEAST_FS_YAML_FILE_PATH", ""), *sys.argv]
    return "prod" if any("feature_store_prod" in arg for arg in invoked) else "local"


PROFILE = _profile()
# finfeast's default workdir (<repo>/var), relative to feature_repo/.
OFFLINE_DIR = os.environ.get("FINFEAST_OFFLINE_DIR") or os.path.join(
    "..", "var", PROFILE, "offline"
)


def _postgres_source(table: str, description: str) -> PostgreSQLSource:
    return PostgreSQLSource(
        name=table,
        table=table,
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
    )


def offline_table_source(table: str, description: str):
    """The batch source for an offline table of the active profile (one Parquet file locally)."""
    if PROFILE == "prod":
        return _postgres_source(table, description)
    return FileSource(
        name=table,
        path=os.path.join(OFFLINE_DIR, f"{table}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
    )


def stream_log_source(table: str, description: str):
    """The batch source of a stream log: locally the directory `<offline_dir>/<table>/` of
    `part-*.parquet` parts (the offline plugin reads every part; no part yet = no rows)."""
    if PROFILE == "prod":
        return _postgres_source(table, description)
    return FileSource(
        name=table,
        path=os.path.join(OFFLINE_DIR, table),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
    )


features_daily_source = offline_table_source(
    "features_daily",
    "Daily bar features of the transforms catalog, one row per (symbol, session close).",
)
