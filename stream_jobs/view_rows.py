"""One batch's output for one feature view: every row for the offline log, the newest per entity
for the online store.

Why not a list of per-row dicts: the market job folds bars in micro-batches into arrays (121
features per bar); turning every bar into a dict only to keep the last one per symbol online was
most of the per-event cost. A `ViewRows` keeps the columnar form for the offline log and builds
dicts only for the rows the online store keeps.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from stream_jobs.offline_log import rows_to_frame
from stream_jobs.online_writer import Row, latest_per_entity
from stream_jobs.views import ViewSpec


class ViewRows:
    """`count` rows of `view`; `latest` (newest row per entity); `frame()` / `rows()` on demand."""

    def __init__(
        self,
        view: ViewSpec,
        count: int,
        latest: list[Row],
        frame: Callable[[], pd.DataFrame],
        rows: Callable[[], list[Row]],
    ) -> None:
        self.view = view
        self.count = count
        self.latest = latest
        self._frame = frame
        self._rows = rows
        # The processor's own frame (join key, event_time_ms, features) when built from one: the
        # offline log's binary COPY encodes it directly instead of `frame()`.
        self.source: pd.DataFrame | None = None

    @classmethod
    def from_rows(cls, view: ViewSpec, rows: list[Row]) -> ViewRows:
        return cls(
            view,
            len(rows),
            list(latest_per_entity(rows).values()),
            lambda: rows_to_frame(view, rows),
            lambda: rows,
        )

    @classmethod
    def from_frame(cls, view: ViewSpec, frame: pd.DataFrame) -> ViewRows:
        """`frame`: join key, `event_time_ms` and one column per feature (any row order)."""
        key = view.join_key
        names = view.feature_names

        def rows_of(df: pd.DataFrame) -> list[Row]:
            records = df[names].to_dict("records")
            return list(zip(df[key].tolist(), df["event_time_ms"].tolist(), records, strict=True))

        newest = frame.sort_values("event_time_ms", kind="stable").drop_duplicates(key, keep="last")

        def log_frame() -> pd.DataFrame:
            created = pd.Timestamp.now(tz="UTC")
            columns: dict[str, object] = {
                key: frame[key].to_numpy(),
                "event_timestamp": pd.to_datetime(
                    frame["event_time_ms"].to_numpy(), unit="ms", utc=True
                ),
                "created_timestamp": pd.Series(
                    [created] * len(frame), dtype="datetime64[us, UTC]"
                ).array,
            }
            for name, dtype in view.features:
                columns[name] = pd.array(
                    frame[name].to_numpy(), dtype="float64" if dtype == "float64" else "Int64"
                )
            return pd.DataFrame(columns)

        out = cls(view, len(frame), rows_of(newest), log_frame, lambda: rows_of(frame))
        out.source = frame
        return out

    @classmethod
    def concat(cls, parts: list[ViewRows]) -> ViewRows:
        """One `ViewRows` of several of the same view (the consumer's message-by-message retry)."""
        if len(parts) == 1:
            return parts[0]
        view = parts[0].view
        latest = list(latest_per_entity([r for p in parts for r in p.latest]).values())

        def frame() -> pd.DataFrame:
            frames = [p.frame() for p in parts if p.count]
            return pd.concat(frames, ignore_index=True) if frames else parts[0].frame()

        return cls(
            view,
            sum(p.count for p in parts),
            latest,
            frame,
            lambda: [r for p in parts for r in p.rows()],
        )

    def frame(self) -> pd.DataFrame:
        return self._frame()

    def rows(self) -> list[Row]:
        return self._rows()
