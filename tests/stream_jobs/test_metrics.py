"""Job metrics stay per job even when Feast has switched prometheus_client to multiprocess mode."""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest

from stream_jobs.metrics import JobMetrics


def test_two_jobs_in_one_process_do_not_share_counters(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    a = JobMetrics("market")
    b = JobMetrics("market")
    a.events_in.labels("market", "market.bars").inc(600)
    b.events_in.labels("market", "market.bars").inc(7)
    assert a.total("finfeast_stream_events_in_total") == 600
    assert b.total("finfeast_stream_events_in_total") == 7


def test_histogram_buckets_are_cumulative_counts(data_dir) -> None:
    import pandas as pd

    from stream_jobs.metrics import _LATENCY_BUCKETS

    # real inter-tick gaps of SPY (seconds) as observations
    ticks = pd.read_csv(data_dir / "intraday/lean_spy_trade_ticks_20131007.csv.gz", nrows=5000)
    gaps = pd.to_datetime(ticks["timestamp"], format="ISO8601").diff().dt.total_seconds().dropna()
    m = JobMetrics("market")
    for g in gaps:
        m.freshness.labels("market").observe(float(g))
    text = generate_latest(m.registry).decode()
    for bound in _LATENCY_BUCKETS:
        expected = int((gaps.to_numpy() <= bound).sum())
        line = f'finfeast_stream_event_to_online_seconds_bucket{{job="market",le="{bound}"}} {float(expected)}'
        assert line in text, line
    assert m.value("finfeast_stream_event_to_online_seconds_count") == len(gaps)
    assert np.isclose(m.value("finfeast_stream_event_to_online_seconds_sum"), gaps.sum())
