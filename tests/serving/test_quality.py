"""Data-quality monitoring: null rates checked against pandas on the source table, PSI maths,
and the report/metrics files (Prometheus text must parse)."""

from __future__ import annotations

import pandas as pd
import pytest

from finfeast.serving.quality import (
    QualityOptions,
    psi_from_histograms,
    run_quality_report,
    write_quality_report,
)


@pytest.fixture(scope="module")
def report(price_store):
    return run_quality_report(price_store, QualityOptions(current_days=60, baseline_days=365))


def _window(source: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    day = source["event_timestamp"].dt.date.astype(str)
    return source[(day >= start) & (day <= end)]


def test_null_rates_and_windows_match_pandas(report, price_repo) -> None:
    source = pd.read_parquet(price_repo.path / "px_features.parquet")
    views = {v.view: v for v in report.views}
    assert {"px_returns", "px_ranges", "px_live"} <= set(views)
    ranges = views["px_ranges"]
    assert ranges.error is None
    newest = source["event_timestamp"].max()
    assert pd.Timestamp(ranges.newest_event) == newest
    assert ranges.freshness_s > 0
    current = _window(source, *ranges.current_window)
    baseline = _window(source, *ranges.baseline_window)
    by_name = {f.feature: f for f in ranges.features}
    for name in ("range_1", "range_25"):
        assert by_name[name].rows == len(current)
        assert by_name[name].null_rate == pytest.approx(current[name].isna().mean())
        assert by_name[name].baseline_null_rate == pytest.approx(baseline[name].isna().mean())
        assert by_name[name].mean == pytest.approx(current[name].mean())
    # Late listings (APTV, DWDP, BHF) start inside the baseline: range_25 has warm-up nulls there.
    assert by_name["range_25"].baseline_null_rate > by_name["range_1"].baseline_null_rate


def test_psi_is_zero_for_identical_and_large_for_shifted_histograms() -> None:
    base = {"bins": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [10, 40, 40, 10]}
    assert psi_from_histograms(base, base) == pytest.approx(0.0, abs=1e-12)
    # Same shape on a finer grid is the same distribution (uniform within bins).
    finer = {
        "bins": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
        "counts": [5, 5, 20, 20, 20, 20, 5, 5],
    }
    assert psi_from_histograms(base, finer) == pytest.approx(0.0, abs=1e-9)
    shifted = {"bins": [2.0, 3.0, 4.0, 5.0, 6.0], "counts": [10, 40, 40, 10]}
    assert psi_from_histograms(base, shifted) > 1.0
    assert psi_from_histograms(base, None) is None


def test_report_files_and_prometheus_text(report, tmp_path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    paths = write_quality_report(report, tmp_path)
    assert [p.name for p in paths] == ["data_quality.json", "data_quality.md", "data_quality.prom"]
    families = {f.name: f for f in text_string_to_metric_families(paths[2].read_text())}
    nulls = {
        (s.labels["feature_view"], s.labels["feature"]): s.value
        for s in families["finfeast_dq_null_rate"].samples
    }
    ranges = next(v for v in report.views if v.view == "px_ranges")
    range_25 = next(f for f in ranges.features if f.feature == "range_25")
    assert nulls[("px_ranges", "range_25")] == pytest.approx(range_25.null_rate, rel=1e-5)
    drift = {s.labels["feature"]: s.value for s in families["finfeast_dq_drift"].samples}
    assert drift["range_25"] == float(range_25.drift)
    assert "| px_ranges | range_25 |" in paths[1].read_text()


def test_unknown_view_is_a_clear_error(price_store) -> None:
    from finfeast.errors import FinfeastError

    with pytest.raises(FinfeastError, match="no_such_view"):
        run_quality_report(price_store, QualityOptions(views=["no_such_view"]))
