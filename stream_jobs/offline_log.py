"""The offline log of stream rows: the same rows the job pushes online, deduplicated by
(entity, event_timestamp), in the profile's offline store.

Why the job writes it itself: Feast's contrib PostgreSQL offline store cannot take offline pushes,
so in prod the log is a PostgreSQL table (upsert with ON CONFLICT on the key); locally it is a
Parquet file under `offline_dir` (read by the push source's batch `FileSource`). Both go through
`finfeast.offline`, whose upsert replaces a row with the same key, so redelivered events never
duplicate. Local Parquet upserts are read-modify-write, so concurrent job processes serialise
them with a file lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from finfeast.config import Settings
from finfeast.offline import WriteResult, open_tables
from stream_jobs.online_writer import Row, ViewSpec

MARKET_LOG = "stream_market_log"
ACCOUNT_LOG = "stream_account_log"


def rows_to_frame(
    view: ViewSpec, rows: Sequence[Row], created: datetime | None = None
) -> pd.DataFrame:
    """A log frame: join key, event_timestamp (UTC), created_timestamp, one column per feature."""
    created = created or datetime.now(UTC)
    data: dict[str, Any] = {
        view.join_key: [r[0] for r in rows],
        "event_timestamp": pd.to_datetime([r[1] for r in rows], unit="ms", utc=True),
        "created_timestamp": pd.Series([created] * len(rows), dtype="datetime64[us, UTC]"),
    }
    for name, dtype in view.features:
        values = [r[2].get(name) for r in rows]
        if dtype == "float64":
            data[name] = pd.array(
                [float("nan") if v is None else v for v in values], dtype="float64"
            )
        elif dtype == "int64":
            data[name] = pd.array(values, dtype="Int64")
        else:
            data[name] = pd.array(values, dtype="boolean")
    return pd.DataFrame(data)


class OfflineLog:
    """Appends (upserts) stream rows into the offline log table of a view."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tables = open_tables(settings)
        self._lock_path = Path(settings.offline_dir) / ".stream_log.lock"

    @contextmanager
    def _locked(self):  # noqa: ANN202
        if self.settings.profile == "prod":
            yield
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def append(self, table: str, view: ViewSpec, rows: Sequence[Row]) -> WriteResult | None:
        if not rows:
            return None
        return self.append_frame(table, view, rows_to_frame(view, rows))

    def append_frame(self, table: str, view: ViewSpec, df: pd.DataFrame) -> WriteResult | None:
        """Upsert a log frame (join key, event_timestamp, created_timestamp, features)."""
        if df.empty:
            return None
        df = df.drop_duplicates([view.join_key, "event_timestamp"], keep="last")
        with self._locked():
            return self.tables.upsert(table, df, key=[view.join_key, "event_timestamp"])

    def read(self, table: str) -> pd.DataFrame:
        return self.tables.read(table)
