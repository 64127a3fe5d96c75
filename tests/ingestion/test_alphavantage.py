"""Alpha Vantage client and source against a local HTTP server replaying recorded responses,
with injected failures: HTTP 500, timeouts, rate-limit and error bodies, truncated JSON."""

from __future__ import annotations

import pandas as pd
import pytest

from finfeast.offline import open_tables
from ingestion.alphavantage_client import (
    AlphaVantageClient,
    AlphaVantageError,
    ClientConfig,
    RateLimiter,
    timezone_name,
)


def client_for(server, tmp_path=None, attempts: int = 4, **kw) -> AlphaVantageClient:
    cfg = ClientConfig(
        api_key="test-key",
        base_url=server.url,
        timeout=0.5,
        attempts=attempts,
        backoff=0.01,
        calls_per_minute=0,
        cache_dir=tmp_path,
        **kw,
    )
    return AlphaVantageClient(cfg)


def test_parses_daily_intraday_and_fx(av_server) -> None:
    client = client_for(av_server)
    meta, daily = client.daily("MSFT")
    assert meta["symbol"] == "MSFT"
    assert len(daily) == 100
    assert list(daily["timestamp"]) == sorted(daily["timestamp"])  # oldest first
    assert daily.iloc[-1]["timestamp"] == "2018-08-16" and daily.iloc[-1]["open"] == "108.3000"
    _, intraday = client.intraday("MSFT", interval="15min")
    assert len(intraday) == 39
    meta, fx = client.fx_daily("EUR", "USD")
    assert len(fx) == 101 and meta["time_zone"] == "GMT+8"
    assert fx.iloc[-1][["open", "close"]].tolist() == ["1.1533", "1.1571"]


@pytest.mark.parametrize("failure", ["500", "timeout", "note", "truncated"])
def test_transient_failures_are_retried(av_server, failure: str) -> None:
    av_server.failures.extend([failure, failure])
    client = client_for(av_server)
    _, daily = client.daily("MSFT")
    assert len(daily) == 100
    assert len(av_server.calls) == 3


@pytest.mark.parametrize(
    ("failure", "message"), [("error", "Invalid API call"), ("information", "premium")]
)
def test_error_bodies_fail_without_retry(av_server, failure: str, message: str) -> None:
    av_server.failures.append(failure)
    with pytest.raises(AlphaVantageError, match=message):
        client_for(av_server).daily("MSFT")
    assert len(av_server.calls) == 1


def test_gives_up_after_the_attempts(av_server) -> None:
    av_server.failures.extend(["500"] * 10)
    with pytest.raises(AlphaVantageError, match="after 3 attempts: HTTP 500"):
        client_for(av_server, attempts=3).daily("MSFT")
    assert len(av_server.calls) == 3


def test_unreachable_api_is_a_clear_error() -> None:
    cfg = ClientConfig(api_key="k", base_url="http://127.0.0.1:9/query", timeout=0.5, attempts=2,
                       backoff=0.01, calls_per_minute=0)  # fmt: skip
    with pytest.raises(AlphaVantageError, match="connection error"):
        AlphaVantageClient(cfg).daily("MSFT")


def test_response_cache_avoids_a_second_call(av_server, tmp_path) -> None:
    client = client_for(av_server, tmp_path)
    first = client.daily("MSFT")[1]
    second = client_for(av_server, tmp_path).daily("MSFT")[1]
    pd.testing.assert_frame_equal(first, second)
    assert len(av_server.calls) == 1
    assert "test-key" not in "".join(p.read_text() for p in tmp_path.iterdir())  # key not cached


def test_rate_limiter_spaces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(calls_per_minute=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    assert slept == [12.0, 12.0]
    now[0] += 100
    assert limiter.acquire() == 0.0


def test_timezone_labels() -> None:
    assert timezone_name("GMT+8") == "Etc/GMT-8"
    assert timezone_name("US/Eastern") == "America/New_York"
    assert timezone_name("UTC") == "UTC"


def test_source_loads_bars_and_fx_from_the_api(av_env, settings_factory) -> None:
    from ingestion import run_ingest

    settings = settings_factory("local", "av_source")
    summary = run_ingest(settings, sources=["alphavantage"], progress=False)
    src = summary.source("alphavantage")
    assert src.status == "ok", src.error
    assert src.rows_read == 100 + 101
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    tables = open_tables(settings)
    bars = tables.read("bars")
    assert set(bars["symbol"]) == {"MSFT"} and set(bars["source"]) == {"alphavantage"}
    last = bars.set_index("event_timestamp").loc[pd.Timestamp("2018-08-16 20:00", tz="UTC")]
    assert (last["open"], last["close"], last["volume"]) == (108.3, 107.64, 20687122.0)
    fx = tables.read("fx_rates")
    # FX day 2018-08-22 in GMT+8 ends at 2018-08-22 16:00 UTC
    assert (
        fx.set_index("event_timestamp").loc[pd.Timestamp("2018-08-22 16:00", tz="UTC"), "rate"]
        == 1.1571
    )


def test_source_failure_is_reported_and_others_load(av_env, settings_factory) -> None:
    from ingestion import run_ingest

    av_env.failures.extend(["500"] * 10)
    settings = settings_factory("local", "av_down")
    summary = run_ingest(settings, sources=["alphavantage", "arch_indices"], progress=False)
    assert summary.status == "partial"
    assert summary.source("alphavantage").status == "failed"
    assert "HTTP 500" in summary.source("alphavantage").error
    assert summary.source("arch_indices").status == "ok"
    assert len(open_tables(settings).read("bars")) == summary.source("arch_indices").rows_loaded


def test_no_key_is_skipped_not_faked(monkeypatch, settings_factory) -> None:
    from ingestion import run_ingest

    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    settings = settings_factory("local", "av_nokey")
    summary = run_ingest(settings, sources=["alphavantage"], progress=False)
    src = summary.source("alphavantage")
    assert src.status == "skipped" and src.error.startswith("skipped: no key")
    assert summary.status == "ok"
    assert src.rows_read == 0
    assert open_tables(settings).read("bars").empty  # created empty, nothing invented
