"""Data-quality monitoring per feature view: null rates, freshness and drift against a baseline.

Why built on Feast's monitor: `feast monitor run` (Feast's `MonitoringService`) already computes
per-feature statistics (row and null counts, mean, stddev, percentiles, a histogram) inside the
offline store (DuckDB or PostgreSQL SQL, no data pulled into Python). We call its on-the-fly
variant (`compute_transient`, nothing persisted) for two windows per view, relative to the view's
newest event time: the *current* window (last `current_days`) and the *baseline* window (the
`baseline_days` before it). On top we add what Feast does not report:
- drift: the population stability index (PSI) of the current histogram against the baseline's,
  after re-binning the current histogram onto the baseline bin edges (uniform mass within a bin,
  values outside the baseline range go to the edge bins); PSI >= 0.2 is the usual alert level;
- freshness: seconds from the newest event to now (market data here is historical, so the
  report also gives the newest event time itself);
- export: a JSON report, a Markdown table and Prometheus text exposition
  (`finfeast_dq_*` gauges, node-exporter textfile format) for scraping or a pushgateway.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

PSI_EPS = 1e-4  # floor for empty bins (PSI is undefined for zero mass)


@dataclass(frozen=True)
class QualityOptions:
    current_days: int = 30
    baseline_days: int = 365
    views: list[str] | None = None
    psi_alert: float = 0.2
    null_rate_alert: float = 0.05


@dataclass
class FeatureQuality:
    feature: str
    rows: int
    null_rate: float
    baseline_null_rate: float | None
    mean: float | None
    baseline_mean: float | None
    psi: float | None
    drift: bool
    null_alert: bool


@dataclass
class ViewQuality:
    view: str
    newest_event: str | None
    freshness_s: float | None
    current_window: tuple[str, str] | None
    baseline_window: tuple[str, str] | None
    features: list[FeatureQuality] = field(default_factory=list)
    error: str | None = None

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drift]


@dataclass
class QualityReport:
    project: str
    generated_at: str
    options: QualityOptions
    views: list[ViewQuality]

    def summary(self) -> str:
        lines = [f"data quality of project {self.project} ({len(self.views)} feature views)"]
        for v in self.views:
            if v.error:
                lines.append(f"  {v.view}: ERROR {v.error}")
                continue
            worst_null = max((f.null_rate for f in v.features), default=0.0)
            lines.append(
                f"  {v.view}: newest {v.newest_event}, max null rate {worst_null:.3f}, "
                f"drifted {len(v.drifted)}/{len(v.features)}"
                + (f" ({', '.join(v.drifted[:5])})" if v.drifted else "")
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_prometheus(self) -> str:
        """Gauges in Prometheus text format (one sample per view/feature)."""
        per_feature = [(v, f) for v in self.views for f in v.features]
        gauges = [
            (
                "finfeast_dq_null_rate",
                "Share of null values in the current window.",
                [(v.view, f.feature, f"{f.null_rate:.6g}") for v, f in per_feature],
            ),
            (
                "finfeast_dq_psi",
                "Population stability index, current vs baseline window.",
                [(v.view, f.feature, f"{f.psi:.6g}") for v, f in per_feature if f.psi is not None],
            ),
            (
                "finfeast_dq_drift",
                "1 when PSI is at or above the alert level.",
                [(v.view, f.feature, str(int(f.drift))) for v, f in per_feature],
            ),
            (
                "finfeast_dq_freshness_seconds",
                "Seconds since the view's newest event.",
                [
                    (v.view, None, f"{v.freshness_s:.0f}")
                    for v in self.views
                    if v.freshness_s is not None
                ],
            ),
        ]
        out: list[str] = []
        for name, help_text, samples in gauges:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for view, feature, value in samples:
                labels = f'feature_view="{view}"' + (f',feature="{feature}"' if feature else "")
                out.append(f"{name}{{{labels}}} {value}")
        return "\n".join(out) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Data quality: {self.project}",
            "",
            f"Generated {self.generated_at}; current window {self.options.current_days} days, "
            f"baseline {self.options.baseline_days} days before it; PSI alert "
            f">= {self.options.psi_alert}.",
            "",
            "| view | feature | rows | null rate | baseline null rate | mean | baseline mean | PSI | drift |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v in self.views:
            if v.error:
                lines.append(f"| {v.view} | (error: {v.error}) | | | | | | | |")
            for f in v.features:
                lines.append(
                    f"| {v.view} | {f.feature} | {f.rows} | {f.null_rate:.4f} | "
                    f"{_fmt(f.baseline_null_rate)} | {_fmt(f.mean)} | {_fmt(f.baseline_mean)} | "
                    f"{_fmt(f.psi)} | {'yes' if f.drift else ''} |"
                )
        return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def psi_from_histograms(
    baseline: dict[str, Any] | None, current: dict[str, Any] | None
) -> float | None:
    """PSI of `current` against `baseline` (Feast histogram dicts: `bins` edges, `counts`)."""
    if not baseline or not current:
        return None
    b_edges, b_counts = baseline["bins"], baseline["counts"]
    c_edges, c_counts = current["bins"], current["counts"]
    if sum(b_counts) == 0 or sum(c_counts) == 0:
        return None
    n_bins = len(b_counts)
    moved = [0.0] * n_bins
    lo_b, hi_b = b_edges[0], b_edges[-1]
    for i, count in enumerate(c_counts):
        if count == 0:
            continue
        lo, hi = c_edges[i], c_edges[i + 1] if len(c_edges) > i + 1 else c_edges[i]
        if hi <= lo:  # zero-width bin: all mass at one point
            moved[_bin_index(lo, b_edges)] += count
            continue
        # Spread the bin's mass uniformly over [lo, hi) and intersect with baseline bins.
        below = max(0.0, min(hi, lo_b) - lo) / (hi - lo)
        above = max(0.0, hi - max(lo, hi_b)) / (hi - lo)
        moved[0] += count * below
        moved[-1] += count * above
        for j in range(n_bins):
            a, b = max(lo, b_edges[j]), min(hi, b_edges[j + 1])
            if b > a:
                moved[j] += count * (b - a) / (hi - lo)
    total_b, total_c = float(sum(b_counts)), float(sum(moved))
    psi = 0.0
    for bc, cc in zip(b_counts, moved, strict=True):
        p = max(bc / total_b, PSI_EPS)
        q = max(cc / total_c, PSI_EPS)
        psi += (q - p) * math.log(q / p)
    return psi


def _bin_index(x: float, edges: list[float]) -> int:
    for j in range(len(edges) - 1):
        if x < edges[j + 1]:
            return j
    return len(edges) - 2


def _as_date(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def run_quality_report(store: FeatureStore, options: QualityOptions | None = None) -> QualityReport:
    """Quality of every (or the selected) feature view with a batch source."""
    from feast.monitoring.monitoring_service import MonitoringService

    options = options or QualityOptions()
    service = MonitoringService(store)
    now = datetime.now(UTC)
    views = []
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if options.views and fv.name not in options.views:
            continue
        if fv.batch_source is None:
            continue
        views.append(_view_quality(store, service, fv, options, now))
    if options.views:
        missing = set(options.views) - {v.view for v in views}
        if missing:
            from finfeast.errors import FinfeastError

            raise FinfeastError(f"unknown feature views: {', '.join(sorted(missing))}")
    return QualityReport(store.project, now.isoformat(timespec="seconds"), options, views)


def _view_quality(
    store: FeatureStore, service: Any, fv: Any, options: QualityOptions, now: datetime
) -> ViewQuality:
    try:
        newest = _newest_event(store, service, fv)
    except Exception as exc:  # noqa: BLE001 - a missing table is reported, not fatal
        return ViewQuality(fv.name, None, None, None, None, error=str(exc).splitlines()[0][:200])
    if newest is None:
        return ViewQuality(fv.name, None, None, None, None, error="no rows")
    newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    cur_end = _as_date(newest)
    cur_start = cur_end - timedelta(days=options.current_days - 1)
    base_end = cur_start - timedelta(days=1)
    base_start = base_end - timedelta(days=options.baseline_days - 1)
    current = service.compute_transient(store.project, fv.name, None, cur_start, cur_end)
    baseline = service.compute_transient(store.project, fv.name, None, base_start, base_end)
    base_by_name = {m["feature_name"]: m for m in baseline["metrics"]}
    features = []
    for m in current["metrics"]:
        b = base_by_name.get(m["feature_name"])
        psi = psi_from_histograms(b and b.get("histogram"), m.get("histogram"))
        null_rate = float(m["null_rate"]) if m["row_count"] else 1.0
        features.append(
            FeatureQuality(
                feature=m["feature_name"],
                rows=int(m["row_count"]),
                null_rate=null_rate,
                baseline_null_rate=(float(b["null_rate"]) if b and b["row_count"] else None),
                mean=m.get("mean"),
                baseline_mean=b.get("mean") if b else None,
                psi=psi,
                drift=psi is not None and psi >= options.psi_alert,
                null_alert=null_rate > options.null_rate_alert,
            )
        )
    return ViewQuality(
        view=fv.name,
        newest_event=newest.isoformat(),
        freshness_s=(now - newest).total_seconds(),
        current_window=(cur_start.isoformat(), cur_end.isoformat()),
        baseline_window=(base_start.isoformat(), base_end.isoformat()),
        features=features,
    )


def _newest_event(store: FeatureStore, service: Any, fv: Any) -> datetime | None:
    """MAX(event timestamp) of the view's source: Feast's push-down, else a timestamp-only pull
    (Feast 0.67's fallback cannot parse the string DuckDB/ibis hands back)."""
    try:
        return service._get_max_timestamp(fv)
    except TypeError:
        import pandas as pd

        source = fv.batch_source
        job = store._get_provider().offline_store.pull_all_from_table_or_query(
            config=store.config,
            data_source=source,
            join_key_columns=[],
            feature_name_columns=[],
            timestamp_field=source.timestamp_field,
            start_date=datetime(1970, 1, 1, tzinfo=UTC),
            end_date=datetime(2200, 1, 1, tzinfo=UTC),
        )
        column = job.to_df()[source.timestamp_field]
        newest = pd.to_datetime(column, utc=True).max()
        return None if pd.isna(newest) else newest.to_pydatetime()


def write_quality_report(report: QualityReport, out_dir: Path) -> list[Path]:
    """`data_quality.json`, `data_quality.md`, `data_quality.prom` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        out_dir / "data_quality.json",
        out_dir / "data_quality.md",
        out_dir / "data_quality.prom",
    ]
    paths[0].write_text(json.dumps(report.to_json(), indent=1, default=str))
    paths[1].write_text(report.to_markdown())
    paths[2].write_text(report.to_prometheus())
    return paths
