"""Serving-log audit: were the values we served the values the backfill has for that moment?

Why: a model reviewer (or a regulator) asks "what did the model see, and was it right?". The
serving logs (finfeast/serving/feature_log.py) hold, per served entity and feature, the value,
its status and the feature's event timestamp. For every logged value served with a value
(status PRESENT, or OUTSIDE_MAX_AGE: the value is returned, flagged as older than the view TTL) this
check asks the offline store for the same feature of the same entity as of that event timestamp
(a point-in-time `get_historical_features`, so only data known at that time is used) and counts
disagreements. Values served without an event timestamp (missing entity) or with another status
are reported as not comparable, not as matches. On-demand features are skipped (they are
recomputed from their inputs, which are audited themselves).

Logs are read straight from the service's Parquet log directory (Feast's file logging layout,
also used for PostgreSQL profiles where Feast has no logging destination).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

SYSTEM_COLUMNS = {"__log_timestamp", "__log_date", "__request_id"}
STATUS_PRESENT = 1
STATUS_OUTSIDE_MAX_AGE = 4
SERVED_STATUSES = (STATUS_PRESENT, STATUS_OUTSIDE_MAX_AGE)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IN_FLIGHT_S = 60.0  # a log file younger than this that cannot be read is still being written


@dataclass
class FeatureAudit:
    column: str
    compared: int
    mismatches: int

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass
class AuditReport:
    service: str
    start: str
    end: str
    logged_rows: int
    compared_values: int
    mismatched_values: int
    not_comparable_values: int
    skipped_columns: list[str]
    features: list[FeatureAudit] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched_values / self.compared_values if self.compared_values else 0.0

    def summary(self) -> str:
        return (
            f"audit of {self.service} serving logs {self.start} .. {self.end}: "
            f"{self.logged_rows} logged rows, {self.compared_values} values compared, "
            f"{self.mismatched_values} mismatches (rate {self.mismatch_rate:.6f}), "
            f"{self.not_comparable_values} not comparable"
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mismatch_rate"] = self.mismatch_rate
        for f, d in zip(self.features, out["features"], strict=True):
            d["mismatch_rate"] = f.mismatch_rate
        return out

    def to_markdown(self) -> str:
        lines = [
            f"# Serving-log audit: {self.service}",
            "",
            self.summary() + ".",
            "",
            "| feature | compared | mismatches | rate |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {f.column} | {f.compared} | {f.mismatches} | {f.mismatch_rate:.6f} |"
            for f in self.features
        ]
        if self.examples:
            lines += ["", "First mismatches:", "", "```", *map(json.dumps, self.examples), "```"]
        return "\n".join(lines) + "\n"


def read_serving_logs(
    store: FeatureStore, service_name: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Logged rows of a service with `start <= __log_timestamp < end`."""
    import pandas as pd
    from feast.errors import FeatureServiceNotFoundException

    from finfeast.errors import FinfeastError

    try:
        service = store.get_feature_service(service_name)
    except FeatureServiceNotFoundException as exc:
        raise FinfeastError(str(exc)) from exc
    if service.logging_config is None:
        raise FinfeastError(f"feature service {service_name} has no logging config")
    path = getattr(service.logging_config.destination, "path", None)
    if not path:
        raise FinfeastError(f"{service_name}: only file (Parquet) log destinations can be audited")
    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            if time.time() - f.stat().st_mtime < IN_FLIGHT_S:
                continue  # a flush still being written; it is read next time
            raise FinfeastError(f"unreadable serving log file {f}: {exc}") from exc
    if not frames:
        return pd.DataFrame()
    logs = pd.concat(frames, ignore_index=True)
    ts = pd.to_datetime(logs["__log_timestamp"], utc=True)
    return logs[(ts >= start) & (ts < end)].reset_index(drop=True)


def _feature_columns(logs: pd.DataFrame) -> list[str]:
    return [c for c in logs.columns if f"{c}__status" in logs.columns]


def _entity_columns(logs: pd.DataFrame, features: list[str]) -> list[str]:
    derived = {f"{c}__{s}" for c in features for s in ("status", "timestamp")}
    return [c for c in logs.columns if c not in SYSTEM_COLUMNS | set(features) | derived]


def audit_serving_logs(
    store: FeatureStore,
    service_name: str,
    start: datetime,
    end: datetime,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    max_examples: int = 10,
) -> AuditReport:
    """Compare every comparable logged value with the point-in-time backfill."""
    import numpy as np
    import pandas as pd

    logs = read_serving_logs(store, service_name, start, end)
    report = AuditReport(service_name, start.isoformat(), end.isoformat(), len(logs), 0, 0, 0, [])
    if logs.empty:
        return report
    features = _feature_columns(logs)
    entity_cols = _entity_columns(logs, features)
    plain_views = {fv.name for fv in store.list_feature_views()}
    by_view: dict[str, list[str]] = {}
    for col in features:
        view, _, feat = col.partition("__")
        if view in plain_views:
            by_view.setdefault(view, []).append(feat)
        else:
            report.skipped_columns.append(col)

    for view, feats in by_view.items():
        # Every feature of a view shares the view's event timestamp.
        ts_col = f"{view}__{feats[0]}__timestamp"
        served_ts = pd.to_datetime(logs[ts_col], utc=True)
        comparable = (served_ts > pd.Timestamp(EPOCH)) & logs[
            [f"{view}__{f}__status" for f in feats]
        ].isin(SERVED_STATUSES).all(axis=1)
        report.not_comparable_values += int((~comparable).sum()) * len(feats)
        if not comparable.any():
            continue
        served = logs.loc[comparable].copy()
        served["event_timestamp"] = served_ts[comparable]
        keys = served[[*entity_cols, "event_timestamp"]].drop_duplicates()
        backfill = store.get_historical_features(
            entity_df=keys,
            features=[f"{view}:{f}" for f in feats],
            full_feature_names=True,
        ).to_df()
        # Offline stores return their own timestamp unit/zone (PostgreSQL: naive UTC).
        backfill["event_timestamp"] = _utc_ns(backfill["event_timestamp"])
        served["event_timestamp"] = _utc_ns(served["event_timestamp"])
        merged = served.merge(
            backfill, on=[*entity_cols, "event_timestamp"], how="left", suffixes=("", "__backfill")
        )
        for feat in feats:
            col = f"{view}__{feat}"
            got = merged[col]
            want = merged[f"{col}__backfill"] if f"{col}__backfill" in merged else merged[col]
            match = _values_match(got, want, rtol, atol, np, pd)
            report.features.append(FeatureAudit(col, len(merged), int((~match).sum())))
            for i in np.flatnonzero(~match.to_numpy())[: max_examples - len(report.examples)]:
                report.examples.append(
                    {
                        **{k: str(merged.at[i, k]) for k in entity_cols},
                        "feature": col,
                        "event_timestamp": str(merged.at[i, "event_timestamp"]),
                        "served": _plain(got.iat[i]),
                        "backfill": _plain(want.iat[i]),
                    }
                )
    report.compared_values = sum(f.compared for f in report.features)
    report.mismatched_values = sum(f.mismatches for f in report.features)
    return report


def _utc_ns(column: Any) -> Any:
    import pandas as pd

    return pd.to_datetime(column, utc=True).astype("datetime64[ns, UTC]")


def _values_match(got: Any, want: Any, rtol: float, atol: float, np: Any, pd: Any) -> Any:
    both_null = got.isna() & want.isna()
    if pd.api.types.is_numeric_dtype(got) and pd.api.types.is_numeric_dtype(want):
        close = np.isclose(
            got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=rtol, atol=atol
        )
        return pd.Series(close, index=got.index) | both_null
    return (got == want) | both_null


def _plain(value: Any) -> Any:
    try:
        return None if value != value else float(value)
    except (TypeError, ValueError):
        return str(value)


def write_audit_report(report: AuditReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"serving_audit_{report.service}"
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    paths[0].write_text(json.dumps(report.to_json(), indent=1, default=str))
    paths[1].write_text(report.to_markdown())
    return paths
