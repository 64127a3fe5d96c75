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
