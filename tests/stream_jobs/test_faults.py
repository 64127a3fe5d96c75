"""Scale-out, crash takeover, Redis outage and Prometheus scraping, against real services.

- Two `finfeast stream run market` processes share one consumer group; one is SIGKILLed mid-stream;
  the survivor takes its partitions over (rebuilding their state from the topic) and afterwards
  every replayed bar is in the offline log, the online store holds every symbol's last bar, and
  the values still equal the batch catalog.
- A private redis-server is stopped and restarted mid-stream: the job retries with backoff without
  committing, then catches up; nothing is lost.
- A real Prometheus server scrapes a running job and a PromQL query returns the event count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from stream_jobs.consistency import compare, day_bars, history_batch_features
from stream_jobs.offline_log import MARKET_LOG, OfflineLog
from stream_jobs.replay import bar_messages, produce
from stream_jobs.schemas import TOPIC_BARS
from stream_jobs.views import market_view

pytestmark = [pytest.mark.kafka, pytest.mark.prod, pytest.mark.slow]


def _paced_producer(bootstrap: str, bars: pd.DataFrame, seconds: float) -> threading.Thread:
    """Produce `bars` spread evenly over about `seconds` (a live-looking stream)."""
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config

    ensure_topics(bootstrap, [TOPIC_BARS])
    producer = Producer(producer_config(bootstrap))
    span_ms = (
        bars["event_timestamp"].iloc[-1] - bars["event_timestamp"].iloc[0]
    ).total_seconds() * 1000
    speed = span_ms / 1000 / seconds
    thread = threading.Thread(
        target=produce, args=(producer, TOPIC_BARS, bar_messages(bars)), kwargs={"speed": speed}
    )
    thread.start()
    return thread


def _log_keys(settings) -> set:  # noqa: ANN001
    log = OfflineLog(settings).read(MARKET_LOG)
    return set(zip(log["symbol"], pd.to_datetime(log["event_timestamp"], utc=True), strict=True))


def _assert_online_is_last_bar(settings, bars: pd.DataFrame) -> None:  # noqa: ANN001
    from finfeast.store import get_store

    view = market_view()
    last = bars.groupby("symbol").tail(1).set_index("symbol")
    symbols = sorted(last.index)
    got = (
        get_store(settings)
        .get_online_features(
            features=[f"{view.name}:last_close", f"{view.name}:last_volume"],
            entity_rows=[{"symbol": s} for s in symbols],
            full_feature_names=False,
        )
        .to_dict()
    )
    assert got["last_close"] == [float(last.loc[s, "close"]) for s in symbols]
    assert got["last_volume"] == [float(last.loc[s, "volume"]) for s in symbols]


def _job_process(settings, bootstrap: str, group: str, idle: float) -> subprocess.Popen:  # noqa: ANN001
    env = {**os.environ, **settings.env()}
    cmd = [
        sys.executable, "-m", "finfeast.cli", "--profile", settings.profile, "stream", "run", "market",
        "--bootstrap", bootstrap, "--group", group, "--metrics-port", "0", "--until-idle", str(idle),
    ]  # fmt: skip
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _metrics_port(proc: subprocess.Popen, lines: list[str], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("job exited early:\n" + "".join(lines))
        lines.append(line)
        m = re.search(r"metrics on http://[^/]+:(\d+)/metrics", line)
        if m:
            return int(m.group(1))
    raise AssertionError("job did not start:\n" + "".join(lines))


def _scrape(port: int, name: str, proc: subprocess.Popen | None = None, lines=()) -> float:  # noqa: ANN001
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError as exc:  # the job died: say how, with what it printed
        state = "running" if proc is None or proc.poll() is None else f"exit {proc.returncode}"
        raise AssertionError(
            f"metrics scrape failed ({exc}); job {state}:\n" + "".join(lines)
        ) from exc
    text = text.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _drain_output(proc: subprocess.Popen, lines: list[str]) -> threading.Thread:
    t = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    t.start()
    return t


@pytest.fixture(scope="module")
def faults_prod(settings_factory):  # noqa: ANN001, ANN201
    """Prod settings of this module (own database and Feast project); tests use distinct days."""
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_faults")
    apply_repo(settings)
    return settings


def _day_keys(settings, bars: pd.DataFrame) -> set:  # noqa: ANN001
    lo, hi = bars["event_timestamp"].min(), bars["event_timestamp"].max()
    return {k for k in _log_keys(settings) if lo <= k[1] <= hi}


def test_two_processes_share_partitions_and_survive_a_kill(faults_prod, fresh_broker) -> None:
    settings = faults_prod
    bars = day_bars(settings, "2013-10-09")
    group = "t.scale"
    out_a: list[str] = []
    out_b: list[str] = []
    # Two partitions, so each process's share carries bars: with the default three, the four
    # symbols hash (librdkafka's crc32 partitioner) to partitions 1 and 2 only, and a process
    # given partition 0 alone never got busy (the test failed whenever the assignor chose that).
    from stream_jobs.broker import ensure_topics

    ensure_topics(fresh_broker, [TOPIC_BARS], partitions=2)
    a = _job_process(settings, fresh_broker, group, idle=8)
    b = _job_process(settings, fresh_broker, group, idle=8)
    try:
        port_a = _metrics_port(a, out_a)
        port_b = _metrics_port(b, out_b)
        _drain_output(a, out_a)
        _drain_output(b, out_b)
        time.sleep(6)  # both joined the group and share the partitions
        producer = _paced_producer(fresh_broker, bars, seconds=30)
        # Kill `a` once both have processed bars (a loaded CI machine takes seconds to join the
        # group and to run the first batch), while the stream is still flowing.
        deadline = time.monotonic() + 90
        busy_a = busy_b = 0.0
        while time.monotonic() < deadline and not (busy_a > 0 and busy_b > 0):
            time.sleep(0.5)
            busy_a = _scrape(port_a, "finfeast_stream_events_in_total", a, out_a)
            busy_b = _scrape(port_b, "finfeast_stream_events_in_total", b, out_b)
        # both consume: partitions are shared
        assert busy_a > 0 and busy_b > 0, (busy_a, busy_b, "".join(out_a), "".join(out_b))
        os.killpg(a.pid, signal.SIGKILL)  # mid-stream, without a clean leave
        producer.join()
        assert b.wait(timeout=120) == 0, "".join(out_b)
    finally:
        for p in (a, b):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    # the survivor took the dead one's partitions over: from a checkpoint or, for symbols it had
    # no state of, from offline history (stream_jobs.bootstrap)
    took_over = [x for x in out_b if "restored" in x or "rebuilt" in x or "bootstrapped" in x]
    assert len(took_over) >= 2, "".join(out_b)
    assert _day_keys(settings, bars) == set(
        zip(bars["symbol"], bars["event_timestamp"], strict=True)
    )
    _assert_online_is_last_bar(settings, bars)
    log = OfflineLog(settings).read(MARKET_LOG)
    report = compare(log, history_batch_features(settings, bars), "2013-10-09")
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)


def test_redis_restart_mid_stream_loses_nothing(faults_prod, private_redis, fresh_broker) -> None:
    from dataclasses import replace

    from stream_jobs.jobs import JobOptions, build_loop

    settings = replace(faults_prod, redis_port=private_redis.port)  # same registry and database
    bars = day_bars(settings, "2013-10-10")
    loop = build_loop(
        settings,
        "market",
        JobOptions(
            bootstrap=fresh_broker,
            group="t.redis",
            idle_exit_seconds=3,
            max_seconds=120,
            batch_size=100,
        ),
    )
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(summary=loop.run()))
    job.start()
    producer = _paced_producer(fresh_broker, bars, seconds=12)
    deadline = time.monotonic() + 120
    while loop.summary.batches < 3 and time.monotonic() < deadline:  # the job is live
        time.sleep(0.05)
    time.sleep(1)
    written_before = loop.summary.rows_out
    private_redis.stop()
    time.sleep(2.5)
    private_redis.start()
    producer.join()
    job.join(timeout=120)
    summary = result["summary"]
    assert 0 < written_before < len(bars)  # the outage hit mid-stream
    assert summary.retries > 0  # the job saw the outage and retried instead of committing
    assert loop.metrics.total("finfeast_stream_write_retries_total") == summary.retries
    assert _day_keys(settings, bars) == set(
        zip(bars["symbol"], bars["event_timestamp"], strict=True)
    )
    _assert_online_is_last_bar(settings, bars)


def _prometheus_query(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(query)}"
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success"
    return body["data"]["result"]


def test_prometheus_scrapes_a_running_job(
    faults_prod, fresh_broker, helpers, tmp_path: Path
) -> None:
    from stream_jobs.jobs import JobOptions, build_loop

    binary = helpers.which_or_unavailable("prometheus")
    bars = day_bars(faults_prod, "2013-10-11").head(600)
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config

    ensure_topics(fresh_broker, [TOPIC_BARS])
    produce(Producer(producer_config(fresh_broker)), TOPIC_BARS, bar_messages(bars))
    loop = build_loop(
        faults_prod, "market", JobOptions(bootstrap=fresh_broker, group="t.prom", max_seconds=90)
    )
    metrics_port = loop.metrics.serve(0)
    job = threading.Thread(target=loop.run)
    job.start()
    prom_port = helpers.free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: finfeast_stream\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    prom = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        value, rate = None, []
        while time.monotonic() < deadline:
            try:
                result = _prometheus_query(
                    prom_port, 'sum(finfeast_stream_events_in_total{job="market"})'
                )
                value = float(result[0]["value"][1]) if result else None
                rate = _prometheus_query(prom_port, 'finfeast_stream_anomaly_rate{job="market"}')
            except OSError:
                value = None
            if value == len(bars) and rate:
                break
            time.sleep(1)
        assert value == len(bars)
        assert rate and 0.0 <= float(rate[0]["value"][1]) <= 1.0
        up = _prometheus_query(prom_port, 'up{job="finfeast_stream"}')
        assert up and up[0]["value"][1] == "1"
    finally:
        loop.stop()
        job.join(timeout=30)
        loop.metrics.stop()
        os.killpg(prom.pid, signal.SIGTERM)
        prom.wait(timeout=20)


def _online_rows(settings, symbols: list[str], timestamps: bool = False) -> dict:  # noqa: ANN001
    from finfeast.store import get_store

    view = market_view()
    return (
        get_store(settings)
        .get_online_features(
            features=[f"{view.name}:{n}" for n in view.feature_names],
            entity_rows=[{"symbol": s} for s in symbols],
            full_feature_names=False,
        )
        .to_dict(include_event_timestamps=timestamps)
    )


def _committed_total(bootstrap: str, group: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config

    c = Consumer(consumer_config(bootstrap, group))
    parts = c.list_topics(TOPIC_BARS, timeout=10).topics[TOPIC_BARS].partitions
    got = c.committed([TopicPartition(TOPIC_BARS, p) for p in parts], timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in got)


@pytest.fixture(scope="module")
def kill_prod(settings_factory):  # noqa: ANN001, ANN201
    """Its own Feast project and database: the online rows must be this test's alone."""
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_kill")
    apply_repo(settings)
    return settings


def test_sigkill_between_online_write_and_commit_then_redelivery_is_idempotent(
    kill_prod, fresh_broker
) -> None:
    """FINFEAST_FAULT=kill_after_online_write:N kills the job after the N-th batch's online write,
    before its offline log write and offset commit; a restart redelivers that batch and the
    result equals a run without the kill (the batch catalog on the same bars)."""
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config
    from stream_jobs.jobs import JobOptions, build_loop

    settings = kill_prod
    day = "2013-10-07"
    bars = day_bars(settings, day)
    ensure_topics(fresh_broker, [TOPIC_BARS])
    producer = Producer(producer_config(fresh_broker))
    produce(producer, TOPIC_BARS, bar_messages(bars))
    group = "t.kill"
    env = {**os.environ, **settings.env(), "FINFEAST_FAULT": "kill_after_online_write:4"}
    cmd = [
        sys.executable, "-m", "finfeast.cli", "--profile", settings.profile, "stream", "run", "market",
        "--bootstrap", fresh_broker, "--group", group, "--batch-size", "100", "--until-idle", "5",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr

    # The kill fell between the online write and the commit: the online store is ahead of both
    # the offline log and the committed offsets.
    logged = _day_keys(settings, bars)
    committed = _committed_total(fresh_broker, group)
    assert 0 < len(logged) < len(bars)
    assert committed <= len(logged) < len(bars)
    symbols = sorted(bars["symbol"].unique())
    online = _online_rows(settings, symbols, timestamps=True)
    from feast.online_response import TIMESTAMP_POSTFIX

    stamps = [
        pd.Timestamp(sec, unit="s", tz="UTC") for sec in online["last_close" + TIMESTAMP_POSTFIX]
    ]
    newest_logged = {s: max((t for sym, t in logged if sym == s), default=None) for s in symbols}
    ahead = [
        s
        for s, t in zip(symbols, stamps, strict=True)
        if t.value > 0 and (newest_logged[s] is None or t > newest_logged[s])
    ]
    assert ahead, (stamps, newest_logged)  # online rows of the killed batch, not in the log

    loop = build_loop(
        settings,
        "market",
        JobOptions(bootstrap=fresh_broker, group=group, idle_exit_seconds=2, max_seconds=180),
    )
    summary = loop.run()
    loop.writer.close()
    assert summary.events_in > 0
    # idempotent: every bar logged exactly once, values equal to the batch catalog, online = the
    # last logged row of each symbol, the same as without the kill
    log = OfflineLog(settings).read(MARKET_LOG)
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    day_log = log[(ts >= bars["event_timestamp"].min()) & (ts <= bars["event_timestamp"].max())]
    assert len(day_log) == len(bars)
    assert _day_keys(settings, bars) == set(
        zip(bars["symbol"], bars["event_timestamp"], strict=True)
    )
    report = compare(day_log, history_batch_features(settings, bars), day)
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)
    last = bars.groupby("symbol").tail(1).set_index("symbol")
    online = _online_rows(settings, symbols)
    assert online["last_close"] == [float(last.loc[s, "close"]) for s in symbols]
    last_logged = (
        day_log.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    )
    for name in market_view().feature_names:
        for i, s in enumerate(symbols):
            got, want = online[name][i], last_logged.loc[s, name]
            both_null = got is None and (want is None or pd.isna(want))
            assert both_null or float(got) == float(want), (name, s, got, want)


@pytest.fixture(scope="module")
def kill_log_prod(settings_factory):  # noqa: ANN001, ANN201
    """Its own Feast project and database: the online rows must be this test's alone."""
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_kill_log")
    apply_repo(settings)
    return settings


def test_sigkill_before_the_log_write_then_redelivery_logs_every_bar_once(
    kill_log_prod, fresh_broker
) -> None:
    """FINFEAST_FAULT=kill_before_log_write:N kills the job on its offline-log writer thread just
    before the N-th log append: the batches it holds are written online, not logged, not
    committed (the consumer went on without waiting for the log). A restart redelivers them and
    every bar ends in the log exactly once (after the read's dedup), equal to the batch catalog."""
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config
    from stream_jobs.jobs import JobOptions, build_loop

    settings = kill_log_prod
    day = "2013-10-08"
    bars = day_bars(settings, day)
    ensure_topics(fresh_broker, [TOPIC_BARS])
    produce(Producer(producer_config(fresh_broker)), TOPIC_BARS, bar_messages(bars))
    group = "t.kill.log"
    env = {**os.environ, **settings.env(), "FINFEAST_FAULT": "kill_before_log_write:3"}
    cmd = [
        sys.executable, "-m", "finfeast.cli", "--profile", settings.profile, "stream", "run", "market",
        "--bootstrap", fresh_broker, "--group", group, "--batch-size", "100", "--until-idle", "5",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert "before log write 3" in proc.stdout + proc.stderr

    # Killed between online writes and the log append: online is ahead of the log, the committed
    # offsets are not ahead of the log.
    logged = _day_keys(settings, bars)
    committed = _committed_total(fresh_broker, group)
    assert 0 < len(logged) < len(bars)
    assert committed <= len(logged)
    symbols = sorted(bars["symbol"].unique())
    online = _online_rows(settings, symbols, timestamps=True)
    from feast.online_response import TIMESTAMP_POSTFIX

    stamps = [
        pd.Timestamp(sec, unit="s", tz="UTC") for sec in online["last_close" + TIMESTAMP_POSTFIX]
    ]
    newest_logged = {s: max((t for sym, t in logged if sym == s), default=None) for s in symbols}
    ahead = [
        s
        for s, t in zip(symbols, stamps, strict=True)
        if t.value > 0 and (newest_logged[s] is None or t > newest_logged[s])
    ]
    assert ahead, (stamps, newest_logged)

    loop = build_loop(
        settings,
        "market",
        JobOptions(bootstrap=fresh_broker, group=group, idle_exit_seconds=2, max_seconds=180),
    )
    summary = loop.run()
    loop.writer.close()
    assert summary.events_in > 0 and summary.log_writes > 0
    assert _committed_total(fresh_broker, group) == len(bars)  # everything committed at the end
    log = OfflineLog(settings)
    raw = log.read_raw(MARKET_LOG)
    raw_ts = pd.to_datetime(raw["event_timestamp"], utc=True)
    in_day = (raw_ts >= bars["event_timestamp"].min()) & (raw_ts <= bars["event_timestamp"].max())
    assert in_day.sum() >= len(bars)  # redelivered rows may be stored twice; none is missing
    day_log = _day(log.read(MARKET_LOG), bars)
    assert len(day_log) == len(bars)
    assert set(zip(day_log["symbol"], day_log["event_timestamp"], strict=True)) == set(
        zip(bars["symbol"], bars["event_timestamp"], strict=True)
    )
    report = compare(day_log, history_batch_features(settings, bars), day)
    assert report.rate == 1.0 and report.missing_rows == 0, str(report)
    last = bars.groupby("symbol").tail(1).set_index("symbol")
    assert _online_rows(settings, symbols)["last_close"] == [
        float(last.loc[s, "close"]) for s in symbols
    ]


def _day(log: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    ts = pd.to_datetime(log["event_timestamp"], utc=True)
    out = log[(ts >= bars["event_timestamp"].min()) & (ts <= bars["event_timestamp"].max())].copy()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out
