"""Training sets: labels as the entity dataframe, features from Feast by point-in-time join.

Why this shape: the label table holds, per (symbol, event_timestamp), what happened *after* that
moment; the entity dataframe built from it asks Feast for the features known *at* that moment
(`get_historical_features` with a FeatureService joins each view backwards in time within its TTL).
Features and labels therefore only meet here, and the join can never put a future feature value
next to a label. `as_of` additionally drops labels that were not yet observable at a given time (a
model trained "as of" T may only learn from rows with `label_available_at_h <= T`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from finfeast.offline import open_tables
from transforms.labels import HORIZONS, LABELS_TABLE, available_at, label_columns


def _horizon_of(label: str) -> int:
    try:
        return int(label.rsplit("_", 1)[1])
    except (IndexError, ValueError) as exc:
        raise FinfeastError(f"not a label column: {label!r}") from exc


def _utc(value: datetime | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def label_entity_frame(
    settings: Settings,
    labels: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    as_of: datetime | str | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """The entity dataframe of a training set: symbol, event_timestamp and the chosen labels.

    Rows whose chosen labels are not all known (the last bars of a symbol, or later than `as_of`)
    are dropped. With `max_rows`, the most recent rows are kept. Sorted by time, then symbol.
    """
    tables = open_tables(settings)
    if not tables.exists(LABELS_TABLE):
        raise FinfeastError(
            f"offline table {LABELS_TABLE!r} does not exist: run `finfeast features` first"
        )
    chosen = list(labels) if labels else label_columns(HORIZONS)
    unknown = [c for c in chosen if c not in label_columns(HORIZONS)]
    if unknown:
        raise FinfeastError(f"unknown label column(s): {', '.join(unknown)}")
    horizons = sorted({_horizon_of(c) for c in chosen})
    avail_cols = [available_at(h) for h in horizons]
    df = tables.read(LABELS_TABLE, columns=["symbol", "event_timestamp", *chosen, *avail_cols])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    if symbols is not None:
        df = df[df["symbol"].isin(list(symbols))]
    if start is not None:
        df = df[df["event_timestamp"] >= _utc(start)]
    if end is not None:
        df = df[df["event_timestamp"] <= _utc(end)]
    df = df.dropna(subset=chosen)
    if as_of is not None:
        cutoff = _utc(as_of)
        for col in avail_cols:
            df = df[pd.to_datetime(df[col], utc=True) <= cutoff]
    df = df.sort_values(["event_timestamp", "symbol"], kind="stable")
    if max_rows is not None:
        df = df.tail(max_rows)
    return df.reset_index(drop=True)


def build_training_set(
    settings: Settings,
    service_name: str,
    labels: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    as_of: datetime | str | None = None,
    max_rows: int | None = None,
    store: Any = None,
) -> pd.DataFrame:
    """Labels + the features of FeatureService `service_name`, joined point-in-time by Feast.

    Returns one row per entity row (symbol, event_timestamp, labels, label availability times,
    features), sorted by time then symbol, with a fresh index.
    """
    from finfeast.store import get_store

    entity_df = label_entity_frame(settings, labels, symbols, start, end, as_of, max_rows)
    if entity_df.empty:
        raise FinfeastError("the training set is empty: no labelled rows match the filters")
    store = store or get_store(settings)
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:  # Feast raises its own not-found types
        raise FinfeastError(f"unknown feature service {service_name!r}: {exc}") from exc
    job = store.get_historical_features(entity_df=entity_df, features=service)
    out = job.to_df()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
