"""Local profile (SQLite online store, Parquet log): the short replay of `finfeast run`, the
accounts job, `finfeast stream check`, and `realtime_v1` with its on-demand view."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from stream_jobs.offline_log import ACCOUNT_LOG, MARKET_LOG, OfflineLog
from stream_jobs.replay import load_intraday_bars
from stream_jobs.schemas import decode
from stream_jobs.simulator import account_messages

pytestmark = [pytest.mark.kafka]
LIMIT = 1200


@pytest.fixture(scope="module")
def replay_summary(stream_local):  # noqa: ANN001, ANN201
    from stream_jobs.replay import run_short_replay

    return run_short_replay(stream_local, limit=LIMIT)


def test_short_replay_processes_every_produced_message(replay_summary, stream_local) -> None:
    bars = load_intraday_bars(stream_local.data_dir).head(LIMIT)
    activity = list(account_messages(bars))
    assert replay_summary.produced["market.bars"] == LIMIT
    assert replay_summary.produced["trades"] + replay_summary.produced["positions"] == len(activity)
    market = replay_summary.jobs["market"]
    accounts = replay_summary.jobs["accounts"]
    assert market.events_in == LIMIT and market.rows_out == LIMIT and market.dlq == 0
    assert accounts.events_in == len(activity) and accounts.dlq == 0
    log = OfflineLog(stream_local).read(MARKET_LOG)
    keys = set(zip(log["symbol"], pd.to_datetime(log["event_timestamp"], utc=True), strict=True))
    assert set(zip(bars["symbol"], bars["event_timestamp"], strict=True)) <= keys
    assert "market" in str(replay_summary)


def test_account_features_online_equal_last_logged_row(replay_summary, stream_local) -> None:
    from finfeast.store import get_store

    log = OfflineLog(stream_local).read(ACCOUNT_LOG)
    assert log["account_id"].str.startswith("SIM").all()
    last = log.sort_values("event_timestamp").groupby("account_id").tail(1).set_index("account_id")
    accounts = sorted(last.index)[:8]
    store = get_store(stream_local)
    got = store.get_online_features(
        features=store.get_feature_service("account_realtime_v1"),
        entity_rows=[{"account_id": a} for a in accounts],
    ).to_dict()
    for name in ("trade_count_1h", "notional_1d", "net_exposure", "realized_pnl", "concentration"):
        assert got[name] == pytest.approx([float(last.loc[a, name]) for a in accounts]), name


def test_account_log_matches_an_independent_replay(replay_summary, stream_local) -> None:
    """The job's rows equal a direct fold of the same simulated events (Kafka adds nothing)."""
    from stream_jobs.account_features import AccountBook

    bars = load_intraday_bars(stream_local.data_dir).head(LIMIT)
    events = sorted(
        (decode(t, v) for t, (_k, v, _ms) in account_messages(bars)),
        key=lambda e: e["event_time_ms"],
    )
    book = AccountBook()
    expected: dict[str, dict] = {}
    for e in events:
        f = book.trade(e) if e["kind"] == "trade" else book.mark(e)
        if f is not None:
            expected[e["account_id"]] = f
    log = OfflineLog(stream_local).read(ACCOUNT_LOG)
    last = log.sort_values("event_timestamp").groupby("account_id").tail(1).set_index("account_id")
    for account, feats in expected.items():
        assert last.loc[account, "trade_count_1d"] == feats["trade_count_1d"]
        assert last.loc[account, "realized_pnl"] == pytest.approx(feats["realized_pnl"], abs=1e-9)


def test_realtime_v1_serves_daily_stream_and_on_demand_features(
    replay_summary, stream_local
) -> None:
    from finfeast.store import get_store
    from stream_jobs.online_writer import open_writer
    from stream_jobs.views import ViewSpec

    store = get_store(stream_local)
    service = store.get_feature_service("realtime_v1")
    daily_view = next(
        p.name
        for p in service.feature_view_projections
        if p.name.startswith("daily_") and any(f.name == "sma_20" for f in p.features)
    )
    # a daily SMA for SPY, written into the daily view's online layout (as materialize would)
    replayed = load_intraday_bars(stream_local.data_dir).head(LIMIT)
    bars = replayed[replayed["symbol"] == "SPY"]
    sma = float(bars["close"].tail(20).mean())
    writer = open_writer(stream_local)
    writer.write(
        ViewSpec(daily_view, "symbol", (("sma_20", "float64"),)),
        [("SPY", int(bars["event_timestamp"].iloc[-1].value // 1_000_000), {"sma_20": sma})],
    )
    live = float(bars["close"].iloc[-1])
    got = store.get_online_features(
        features=service,
        entity_rows=[{"symbol": "SPY", "live_price": live}],
        full_feature_names=True,
    ).to_dict()
    assert got["live_price_vs_sma__live_vs_sma_20"][0] == pytest.approx(live / sma - 1)
    assert got[f"{daily_view}__sma_20"][0] == pytest.approx(sma)
    assert got["stream_market__last_close"][0] == live  # the replay's last SPY bar


def test_stream_check_cli_reports_full_consistency(stream_local, monkeypatch, capsys) -> None:
    from finfeast.cli import main

    for k, v in stream_local.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FINFEAST_KAFKA_BOOTSTRAP", "")
    code = main(["stream", "check", "--day", "2013-10-04"])
    out = capsys.readouterr().out
    m = re.search(r"consistency 2013-10-04: ([\d.]+)% of (\d+) values", out)
    assert m, out
    assert float(m.group(1)) == 100.0 and int(m.group(2)) > 100_000
    assert code == 0
