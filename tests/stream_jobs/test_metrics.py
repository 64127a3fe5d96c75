"""Job metrics stay per job even when Feast has switched prometheus_client to multiprocess mode."""

from __future__ import annotations

import numpy as np
import pytest
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


def _one_by_one(child, values) -> None:  # noqa: ANN001
    for v in values:
        child.observe(float(v))


def _in_one_call(child, values) -> None:  # noqa: ANN001
    child.observe_many(np.asarray(values, dtype=np.float64))


OBSERVERS = pytest.mark.parametrize("observe", [_one_by_one, _in_one_call], ids=["each", "many"])


@OBSERVERS
def test_histogram_buckets_are_cumulative_counts(data_dir, observe) -> None:  # noqa: ANN001
    import pandas as pd

    from stream_jobs.metrics import _LATENCY_BUCKETS

    # real inter-tick gaps of SPY (seconds) as observations
    ticks = pd.read_csv(data_dir / "intraday/lean_spy_trade_ticks_20131007.csv.gz", nrows=5000)
    gaps = pd.to_datetime(ticks["timestamp"], format="ISO8601").diff().dt.total_seconds().dropna()
    m = JobMetrics("market")
    observe(m.freshness.labels("market"), gaps.to_numpy())
    text = generate_latest(m.registry).decode()
    for bound in _LATENCY_BUCKETS:
        expected = int((gaps.to_numpy() <= bound).sum())
        line = f'finfeast_stream_event_to_online_seconds_bucket{{job="market",le="{bound}"}} {float(expected)}'
        assert line in text, line
    assert m.value("finfeast_stream_event_to_online_seconds_count") == len(gaps)
    assert np.isclose(m.value("finfeast_stream_event_to_online_seconds_sum"), gaps.sum())


@OBSERVERS
def test_histogram_edges_values_on_a_bound_above_the_top_and_none(observe) -> None:  # noqa: ANN001
    from stream_jobs.metrics import _LATENCY_BUCKETS

    values = [*_LATENCY_BUCKETS, 0.0, 1e6]  # each bound itself (le: included), zero, beyond all
    m = JobMetrics("market")
    child = m.freshness.labels("market")
    observe(child, [])
    assert m.value("finfeast_stream_event_to_online_seconds_count") == 0
    observe(child, values)
    text = generate_latest(m.registry).decode()
    for k, bound in enumerate(_LATENCY_BUCKETS):
        expected = sum(1 for v in values if v <= bound)
        assert expected == k + 2  # the bounds up to this one, and zero
        line = f'finfeast_stream_event_to_online_seconds_bucket{{job="market",le="{bound}"}} {float(expected)}'
        assert line in text, line
    inf = f'finfeast_stream_event_to_online_seconds_bucket{{job="market",le="+Inf"}} {float(len(values))}'
    assert inf in text
