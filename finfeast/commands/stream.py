"""`finfeast stream`: producers, the stream jobs, the consistency check, an embedded broker.

Import-light: Kafka clients, pandas, River and Feast are imported inside the handlers only.

  finfeast stream produce market.bars --speed 60 --limit 5000   replay real minute bars
  finfeast stream produce market.bars --ticks                   replay the SPY trade ticks
  finfeast stream produce trades                                simulated trades + positions
  finfeast stream run market --metrics-port 9108                the market job (Ctrl-C stops)
  finfeast stream run accounts
  finfeast stream check --day 2013-10-07                        online/offline consistency rate
  finfeast stream replay --limit 2000                           embedded broker + short replay
  finfeast stream broker                                        run an embedded broker in the foreground
  finfeast stream backfill --start 2013-10-04 --end 2013-10-12  stream-view rows for history (offline log)
  finfeast stream backfill --frequency hourly --symbols SPY     hourly bars -> stream_market_hourly_log
  finfeast stream compact                                       rewrite the log parts, deduplicated
  finfeast stream checkpoints [--clear]                         list (or delete) a job's checkpoints
"""

from __future__ import annotations

import argparse

from finfeast.config import Settings

TOPIC_CHOICES = ("market.bars", "trades", "positions")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stream",
        parents=[common],
        help="Kafka producers, stream jobs (market, accounts), consistency check",
        description="Real-time engine: replay real intraday data into Kafka, run the stream jobs "
        "that write features to the online store and the offline log (at-least-once), and check "
        "online/offline consistency. Kafka: FINFEAST_KAFKA_BOOTSTRAP or --bootstrap.",
    )
    ssub = p.add_subparsers(dest="stream_command", metavar="STREAM_COMMAND", required=True)

    pr = ssub.add_parser(
        "produce", parents=[common], help="replay real bars/ticks or simulated account activity"
    )
    pr.add_argument("topic", choices=TOPIC_CHOICES)
    pr.add_argument(
        "--speed", type=float, default=0.0, help="speed-up over real time (0 = as fast as possible)"
    )
    pr.add_argument("--limit", type=int, help="at most this many messages")
    pr.add_argument("--ticks", action="store_true", help="market.bars: replay SPY trade ticks")
    pr.add_argument("--start", default="2013-10-04", help="first replay day (bars)")
    pr.add_argument("--end", default="2013-10-12", help="end day, exclusive (bars)")
    pr.add_argument(
        "--shift-to-now", action="store_true", help="shift event times so the first event is now"
    )
    pr.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default FINFEAST_KAFKA_BOOTSTRAP)"
    )
    pr.set_defaults(handler=_produce)

    rn = ssub.add_parser("run", parents=[common], help="run a stream job (market or accounts)")
    rn.add_argument("job", choices=("market", "accounts"))
    rn.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default FINFEAST_KAFKA_BOOTSTRAP)"
    )
    rn.add_argument("--group", help="consumer group (default finfeast.<project>.<job>)")
    rn.add_argument("--batch-size", type=int, default=1000, help="max messages per poll")
    rn.add_argument(
        "--metrics-port", type=int, default=9108, help="Prometheus /metrics port (0 = any free)"
    )
    rn.add_argument(
        "--until-idle", type=float, help="exit after this many seconds without messages and lag"
    )
    rn.add_argument("--max-events", type=int, help="exit after this many messages")
    rn.add_argument("--no-offline", action="store_true", help="do not append to the offline log")
    rn.set_defaults(handler=_run_job)

    ck = ssub.add_parser(
        "check", parents=[common], help="replay a real day through the market job vs batch features"
    )
    ck.add_argument("--day", default="2013-10-07", help="trading day to replay (2013-10-04..11)")
    ck.add_argument("--tolerance", type=float, default=1e-9)
    ck.set_defaults(handler=_check)

    rp = ssub.add_parser(
        "replay", parents=[common], help="embedded broker + short real replay + both jobs"
    )
    rp.add_argument("--limit", type=int, default=2000, help="number of real minute bars")
    rp.set_defaults(handler=_replay)

    bf = ssub.add_parser(
        "backfill",
        parents=[common],
        help="stream-view offline rows for historical intraday bars, through the job's engine",
    )
    bf.add_argument("--frequency", choices=("minute", "hourly"), default="minute")
    bf.add_argument("--symbols", nargs="+", help="default: every symbol of the file")
    bf.add_argument("--start", help="first bar start, UTC date or instant (default: the first)")
    bf.add_argument("--end", help="end, exclusive (default: after the last bar)")
    bf.add_argument("--table", help="log table (default stream_market_log / _hourly_log)")
    bf.add_argument("--no-anomaly", action="store_true", help="skip the River models (faster)")
    bf.set_defaults(handler=_backfill)

    cp = ssub.add_parser(
        "compact", parents=[common], help="rewrite offline log parts as one deduplicated part"
    )
    cp.add_argument(
        "--table", nargs="+", help="log tables (default: the market, tick and account logs)"
    )
    cp.set_defaults(handler=_compact)

    ckp = ssub.add_parser(
        "checkpoints", parents=[common], help="list a job's partition checkpoints (or --clear)"
    )
    ckp.add_argument("job", nargs="?", default="market", choices=("market", "accounts"))
    ckp.add_argument("--group", help="consumer group (default finfeast.<project>.<job>)")
    ckp.add_argument("--partitions", type=int, default=3, help="partitions to look at")
    ckp.add_argument("--clear", action="store_true", help="delete them (next start bootstraps)")
    ckp.set_defaults(handler=_checkpoints)

    bk = ssub.add_parser(
        "broker", parents=[common], help="run the embedded Kafka-protocol broker until Ctrl-C"
    )
    bk.add_argument("--port", type=int, default=9092)
    bk.set_defaults(handler=_broker)


def _bootstrap(args: argparse.Namespace, settings: Settings) -> str:
    from finfeast.errors import FinfeastError

    bootstrap = getattr(args, "bootstrap", None) or settings.kafka_bootstrap
    if not bootstrap:
        raise FinfeastError(
            "no Kafka: set FINFEAST_KAFKA_BOOTSTRAP or --bootstrap "
            "(`finfeast stream broker` starts a local one; `finfeast stream replay` needs none)"
        )
    return bootstrap


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka import Producer

    from stream_jobs import replay
    from stream_jobs.broker import ensure_topics, producer_config
    from stream_jobs.schemas import TOPICS
    from stream_jobs.simulator import account_messages

    bootstrap = _bootstrap(args, settings)
    ensure_topics(bootstrap, TOPICS)
    producer = Producer(producer_config(bootstrap))
    if args.topic == "market.bars" and args.ticks:
        ticks = replay.load_spy_ticks(settings.data_dir)
        first = int(ticks["event_timestamp"].iloc[0].value // 1_000_000)
        shift = replay.shift_for_now(first) if args.shift_to_now else 0
        messages = replay.tick_messages(ticks, shift)
    else:
        bars = replay.load_intraday_bars(settings.data_dir, start=args.start, end=args.end)
        first = int(bars["event_timestamp"].iloc[0].value // 1_000_000)
        shift = replay.shift_for_now(first) if args.shift_to_now else 0
        if args.topic == "market.bars":
            messages = replay.bar_messages(bars, shift)
        else:
            messages = (m for t, m in account_messages(bars, shift_ms=shift) if t == args.topic)
    print(replay.produce(producer, args.topic, messages, speed=args.speed, limit=args.limit))
    return 0


def _run_job(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.jobs import JobOptions, run_job

    options = JobOptions(
        bootstrap=_bootstrap(args, settings),
        group=args.group,
        batch_size=args.batch_size,
        metrics_port=args.metrics_port,
        idle_exit_seconds=args.until_idle,
        max_events=args.max_events,
        write_offline=not args.no_offline,
    )
    print(run_job(settings, args.job, options, handle_signals=True))
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.consistency import check_consistency

    report = check_consistency(settings, day=args.day, tol=args.tolerance)
    print(report)
    return 0 if report.status == "ok" else 1


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.replay import run_short_replay

    print(run_short_replay(settings, limit=args.limit))
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.backfill import backfill

    print(
        backfill(
            settings,
            frequency=args.frequency,
            symbols=args.symbols,
            start=args.start,
            end=args.end,
            table=args.table,
            score_anomalies=not args.no_anomaly,
        )
    )
    return 0


def _compact(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.market_job import TICK_LOG
    from stream_jobs.offline_log import ACCOUNT_LOG, MARKET_LOG, OfflineLog

    log = OfflineLog(settings)
    keys = {MARKET_LOG: "symbol", TICK_LOG: "symbol", ACCOUNT_LOG: "account_id"}
    for table in args.table or list(keys):
        before, after = log.compact(table, keys.get(table))
        print(f"{table}: {before} rows -> {after} rows")
    return 0


def _checkpoints(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from stream_jobs.checkpoint import CheckpointMismatch, decode, open_checkpoints, read_header

    store = open_checkpoints(settings)
    group = args.group or f"finfeast.{settings.project}.{args.job}"
    if args.clear:
        store.delete(group)
        print(f"{group}: checkpoints deleted")
        return 0
    for p in range(args.partitions):
        blob = store.load(group, p)
        if blob is None:
            print(f"{group}[{p}]: none")
            continue
        header = read_header(blob)
        try:
            decode(blob)
            status = "usable"
        except CheckpointMismatch as exc:
            status = f"REFUSED: {exc}"
        when = dt.datetime.fromtimestamp(header["created_ms"] / 1000, dt.UTC).isoformat()
        print(
            f"{group}[{p}]: offsets {header['offsets']}, {len(blob):,} bytes, written {when}, "
            f"river {header['river']}, format {header['format']}: {status}"
        )
    return 0


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from stream_jobs.broker import EmbeddedBroker

    with EmbeddedBroker(port=args.port) as broker:
        print(
            f"embedded broker on {broker.bootstrap}; export FINFEAST_KAFKA_BOOTSTRAP={broker.bootstrap}"
        )
        try:
            while broker.proc is not None and broker.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0
