"""Feast feature logging for served requests: what was served goes to the service's log destination.

Why here: Feast 0.67's Python feature server does not log served features (only the retired Go
server did); it offers `FeatureStore.write_logged_features(table, feature_service)` and the log
schema (`FeatureServiceLoggingSource.get_schema`). This buffer turns served rows into that schema
(`<view>__<feature>`, `__timestamp`, `__status`, `__log_timestamp`, `__log_date`, `__request_id`)
and flushes them from a background thread, so a request never waits on the offline store. A
failed flush is logged and counted, and its rows are kept for the next attempt (bounded).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore

    from finfeast.serving.responses import OnlineRows

STATUS_PRESENT = 1
MAX_BUFFERED_ROWS = 200_000


@dataclass
class _ServiceBuffer:
    service: Any
    schema: pa.Schema
    sample_rate: float
    rows: list[dict[str, Any]] = field(default_factory=list)


class ServingLogger:
    """Buffers served rows per feature service and writes them with Feast's logging API."""

    def __init__(
        self,
        store: FeatureStore,
        flush_interval_s: float = 5.0,
        max_rows: int = 5_000,
        on_written: Any = None,
        on_error: Any = None,
        refresh_s: float = 60.0,
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._loaded_at = time.monotonic()
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self._on_written = on_written
        self._on_error = on_error
        self._buffers: dict[str, _ServiceBuffer | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def _buffer(self, service_name: str) -> _ServiceBuffer | None:
        now = time.monotonic()
        if now - self._loaded_at > self.refresh_s:
            self._loaded_at = now
            self.forget()  # pick up logging configs changed by `feast apply`
        if service_name not in self._buffers:
            from feast.feature_logging import FeatureServiceLoggingSource

            service = self.store.get_feature_service(service_name, allow_cache=True)
            if service.logging_config is None:
                self._buffers[service_name] = None
            else:
                _ensure_local_destination(service.logging_config.destination)
                source = FeatureServiceLoggingSource(service, self.store.project)
                self._buffers[service_name] = _ServiceBuffer(
                    service=service,
                    schema=source.get_schema(self.store.registry),
                    sample_rate=service.logging_config.sample_rate,
                )
        return self._buffers[service_name]

    def any_logged(self) -> bool:
        """Whether any feature service has a logging config (cached for `refresh_s`): the server
        reads request bodies for serving logs only then."""
        now = time.monotonic()
        cached = getattr(self, "_any", None)
        if cached is None or now - cached[0] > self.refresh_s:
            try:
                services = self.store.list_feature_services()
                cached = (now, any(s.logging_config is not None for s in services))
            except Exception as exc:  # noqa: BLE001 - no logging beats a failed request
                logger.warning(f"cannot list feature services for serving logs: {exc}")
                cached = (now, False)
            self._any = cached
        return cached[1]

    def wants(self, service_name: str) -> bool:
        """Whether the service has a logging config (cached; resets with `forget`)."""
        return self._buffer(service_name) is not None

    def forget(self) -> None:
        """Re-read logging configs on next use (services with buffered rows keep theirs)."""
        with self._lock:
            self._buffers = {k: v for k, v in self._buffers.items() if v is not None and v.rows}

    def record(
        self,
        service_name: str,
        rows: OnlineRows,
        columns: list[str],
        served_at: datetime | None = None,
        request_id: str | None = None,
    ) -> int:
        """Queue one served response; `columns[i]` is feature i's log column (`ReadPlan.log_columns`)."""
        buf = self._buffer(service_name)
        if buf is None:
            return 0
        import random

        if buf.sample_rate < 1.0 and random.random() >= buf.sample_rate:
            return 0
        served_at = served_at or datetime.now(UTC)
        request_id = request_id or uuid.uuid4().hex
        new_rows = []
        for j, entity in enumerate(rows.entities):
            row: dict[str, Any] = {
                rows.join_key: entity,
                "__log_timestamp": served_at,
                "__log_date": served_at.date(),
                "__request_id": request_id,
            }
            for name, values in (rows.request_data or {}).items():
                row[name] = values[j]
            for i, col in enumerate(columns):
                row[col] = rows.values[i][j]
                row[col + "__timestamp"] = rows.timestamps[i][j]
                row[col + "__status"] = (
                    rows.statuses[i][j] if rows.statuses is not None else STATUS_PRESENT
                )
            new_rows.append(row)
        with self._lock:
            buf.rows.extend(new_rows)
            if len(buf.rows) > MAX_BUFFERED_ROWS:
                dropped = len(buf.rows) - MAX_BUFFERED_ROWS
                del buf.rows[:dropped]
                logger.error(f"serving log buffer full: dropped {dropped} oldest rows")
            full = len(buf.rows) >= self.max_rows
        if full and self._thread is None:
            self.flush()
        return len(new_rows)

    def _table(self, buf: _ServiceBuffer, rows: list[dict[str, Any]]) -> pa.Table:
        import pandas as pd
        import pyarrow as pa

        frame = pd.DataFrame(rows).reindex(columns=buf.schema.names)
        for name, dtype in zip(buf.schema.names, buf.schema.types, strict=True):
            if name.endswith("__timestamp"):
                frame[name] = pd.to_datetime(frame[name], utc=True)
            elif pa.types.is_floating(dtype):
                # Feast's JSON carries NaN/Infinity as strings.
                frame[name] = frame[name].map(lambda v: float(v) if isinstance(v, str) else v)
        return pa.Table.from_pandas(
            frame[buf.schema.names], schema=buf.schema, preserve_index=False
        )

    def _write(self, buf: _ServiceBuffer, table: pa.Table) -> None:
        """Feast's logging API; for offline stores without it (PostgreSQL), the same Parquet
        layout Feast's file destination writes (`<path>/<uuid>.parquet`)."""
        try:
            self.store.write_logged_features(table, buf.service)
        except NotImplementedError:
            import pyarrow.parquet as pq

            path = getattr(buf.service.logging_config.destination, "path", None)
            if not isinstance(path, str):
                raise
            name = uuid.uuid4().hex
            pq.write_table(table, f"{path}/.{name}.tmp")  # readers never see a partial file
            os.replace(f"{path}/.{name}.tmp", f"{path}/{name}.parquet")

    def flush(self) -> int:
        """Write every buffered row now; returns rows written."""
        written = 0
        for name, buf in list(self._buffers.items()):
            if buf is None:
                continue
            with self._lock:
                rows, buf.rows = buf.rows, []
            if not rows:
                continue
            try:
                self._write(buf, self._table(buf, rows))
            except Exception as exc:  # noqa: BLE001 - keep serving; report and retry later
                logger.error(f"serving log flush for {name} failed: {exc}")
                if self._on_error:
                    self._on_error(name, len(rows))
                with self._lock:
                    buf.rows[:0] = rows
                continue
            written += len(rows)
            if self._on_written:
                self._on_written(name, len(rows))
        self.written += written
        return written

    def start(self) -> None:
        """Flush in the background every `flush_interval_s`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.flush_interval_s):
                self.flush()

        self._thread = threading.Thread(target=loop, name="serving-log-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()


def _ensure_local_destination(destination: Any) -> None:
    """Feast's file logging writes `<path>/<uuid>.parquet` but does not create `<path>`."""
    from pathlib import Path

    path = getattr(destination, "path", None)
    if isinstance(path, str) and "://" not in path:
        Path(path).mkdir(parents=True, exist_ok=True)
