"""Feast provider whose `ingest_df` hands pushed frames to finfeast's online stores as columns.

Selected in `feature_store*.yaml` (Feast accepts a provider class path):

    provider: finfeast.feast_plugins.provider.FinfeastProvider

Why a provider: `store.push`, `store.write_to_online_store` and `feast serve`'s `/push` reach
the online store through `Provider.ingest_df(feature_view, df)`; Feast's
`PassthroughProvider.ingest_df` converts the frame to one protobuf object per cell and per row
before `online_write_batch`, about two thirds of a 1,000-row push (bench/bench_serving.py). An
online-store plugin only sees the result; the provider is the extension point that sees the
frame. Everything else (materialization, reads, offline writes, infra) is
`PassthroughProvider`'s, so `provider: local` and this class behave the same apart from the
speed of `ingest_df`.

What the columnar path covers and what falls back to Feast's own `ingest_df`: see
`finfeast.feast_plugins.frames` (the rows written are the same; tests/plugins prove it against
Feast's own path). Online stores other than finfeast's plugins always get Feast's path.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from feast.infra.passthrough_provider import PassthroughProvider

from finfeast.feast_plugins.frames import column_rows


class FinfeastProvider(PassthroughProvider):
    """`PassthroughProvider` (Feast's `local` provider) with a columnar `ingest_df`."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        # frames written per path: "columnar" (write_columns) or "feast" (Feast's ingest_df)
        self.ingest_counts = {"columnar": 0, "feast": 0}

    def _ingest_columns(self, feature_view: Any, df: pd.DataFrame, field_mapping: Any) -> bool:
        """Write `df` through the online store's `write_columns`; False = Feast's path must."""
        write = getattr(self.online_store, "write_columns", None)
        if write is None or field_mapping or df is None:
            return False
        try:
            rows = column_rows(feature_view, df)
        except (ValueError, TypeError, OverflowError, KeyError):
            return False  # input Feast's own path judges (and reports) itself
        if rows is None:
            return False
        return bool(write(self.repo_config, feature_view, rows))

    def _ingested(self, feature_view: Any, df: pd.DataFrame, field_mapping: Any) -> bool:
        """True when the columnar path wrote `df`; counts the path taken either way."""
        done = self._ingest_columns(feature_view, df, field_mapping)
        self.ingest_counts["columnar" if done else "feast"] += 1
        return done

    def ingest_df(
        self,
        feature_view: Any,
        df: pd.DataFrame,
        field_mapping: dict | None = None,
    ) -> None:
        if not self._ingested(feature_view, df, field_mapping):
            super().ingest_df(feature_view, df, field_mapping)

    async def ingest_df_async(
        self,
        feature_view: Any,
        df: pd.DataFrame,
        field_mapping: dict | None = None,
    ) -> None:
        # The columnar write is one pipelined round trip; the plugins' async writes are sync too.
        if not self._ingested(feature_view, df, field_mapping):
            await super().ingest_df_async(feature_view, df, field_mapping)
