"""Stream state without a broker: replay stamps, the append-only offline log, checkpoints, bootstrap.

- Stamps: derived in the test from the raw files and the data README §3 (`timestamp` is the bar
  start, a bar covers [timestamp, timestamp + period); the first hourly bar is labelled 09:00 but
  spans 09:30-10:00, checked here against the minute bars it aggregates).
- Offline log: one new part per append (earlier parts byte-for-byte untouched), reads keep the
  latest row per (entity, event_timestamp), compaction leaves one part with the same rows.
- Checkpoints: versioned header; a checkpoint from other code is refused (nothing unpickled).
- Bootstrap: a market processor fed only the last day of bars, bootstrapped from the earlier
  days, emits the batch catalog computed over the whole history (an independent batch pass).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finfeast.config import Settings
from stream_jobs import checkpoint as ck
from stream_jobs.bootstrap import BarHistory, Bootstrapper
from stream_jobs.consumer import Event
from stream_jobs.offline_log import OfflineLog, dedupe
from stream_jobs.replay import BARS_FILE, HOURLY_FILE, load_intraday_bars
from stream_jobs.schemas import TOPIC_BARS
from stream_jobs.views import market_view

# ---- stamps ------------------------------------------------------------------------------


def test_minute_bars_are_stamped_at_their_end(data_dir: Path) -> None:
    raw = pd.read_csv(data_dir / BARS_FILE)
    raw = raw[raw["timestamp"].str.startswith("2013-10-07")]
    bars = load_intraday_bars(data_dir, start="2013-10-07", end="2013-10-08")
    got = bars.set_index(["symbol", bars["event_timestamp"]])["close"]
    # README §3: the bar covers [timestamp, timestamp + 1 minute): known at timestamp + 1 minute.
    ends = pd.to_datetime(raw["timestamp"], utc=True) + pd.Timedelta(seconds=60)
    want = pd.Series(
        raw["close"].to_numpy(), index=pd.MultiIndex.from_arrays([raw["symbol"], ends])
    )
    assert len(got) == len(want) == len(raw)
    assert got.sort_index().equals(want.sort_index().rename("close").rename_axis(got.index.names))
    # the day's last extended-hours bar (19:59 New York) closes at 20:00 New York
    last = bars["event_timestamp"].max().tz_convert("America/New_York")
    assert (last.hour, last.minute) == (20, 0)


def test_hourly_bars_end_where_their_minute_bars_end(data_dir: Path) -> None:
    hourly = load_intraday_bars(
        data_dir, symbols=["SPY"], start="2013-10-07", end="2013-10-08", file=HOURLY_FILE
    )
    minute = pd.read_csv(data_dir / BARS_FILE)
    minute = minute[(minute["symbol"] == "SPY") & minute["timestamp"].str.startswith("2013-10-07")]
    start = pd.to_datetime(minute["timestamp"], utc=True)
    local = start.dt.tz_convert("America/New_York")
    regular = (local.dt.hour * 60 + local.dt.minute >= 570) & (local.dt.hour < 16)
    minute, start = minute[regular.to_numpy()], start[regular.to_numpy()]
    assert len(hourly) == 7
    for _, bar in hourly.iterrows():
        end = bar["event_timestamp"]
        inside = ((start < end) & (start >= end - pd.Timedelta(hours=1))).to_numpy()
        assert minute.loc[inside, "volume"].sum() == bar["volume"]  # the same trades
        # the last minute bar in it ends exactly at the hourly bar's stamp
        assert start[inside].max() + pd.Timedelta(minutes=1) == end
        assert minute.loc[inside, "close"].iloc[-1] == bar["close"]
    first = hourly["event_timestamp"].iloc[0].tz_convert("America/New_York")
    assert (first.hour, first.minute) == (10, 0)  # labelled 09:00, spans 09:30-10:00


# ---- offline log -------------------------------------------------------------------------


@pytest.fixture
def local_settings(tmp_path: Path, data_dir: Path) -> Settings:
    return Settings(profile="local", workdir=tmp_path, data_dir=data_dir, project="t_log")


def _frame(symbols: list[str], minutes: list[int], value: float, created: str) -> pd.DataFrame:
    view = market_view()
    columns = {
        "symbol": symbols,
        "event_timestamp": pd.to_datetime(minutes, unit="m", utc=True),
        "created_timestamp": pd.Series([pd.Timestamp(created, tz="UTC")] * len(symbols)).array,
    }
    for name, dtype in view.features:
        columns[name] = pd.array(
            [value] * len(symbols), dtype="float64" if dtype == "float64" else "Int64"
        )
    return pd.DataFrame(columns)


def test_offline_log_appends_parts_and_reads_latest(local_settings: Settings) -> None:
    log = OfflineLog(local_settings)
    view = market_view()
    log.append_frame("stream_market_log", view, _frame(["SPY", "IBM"], [1, 1], 1.0, "2026-01-01"))
    first = log.parts("stream_market_log")
    before = first[0].read_bytes()
    # a redelivery of SPY@1 (newer write) and a new bar
    log.append_frame("stream_market_log", view, _frame(["SPY", "SPY"], [1, 2], 2.0, "2026-01-02"))
    parts = log.parts("stream_market_log")
    assert len(parts) == 2 and parts[0] == first[0]
    assert parts[0].read_bytes() == before  # O(batch): the earlier part is not rewritten
    assert len(log.read_raw("stream_market_log")) == 4
    got = log.read("stream_market_log")
    assert list(
        zip(got["symbol"], got["event_timestamp"].dt.minute, got["last_close"], strict=True)
    ) == [
        ("IBM", 1, 1.0),
        ("SPY", 1, 2.0),  # the later write wins
        ("SPY", 2, 2.0),
    ]
    assert log.compact("stream_market_log") == (4, 3)
    assert len(log.parts("stream_market_log")) == 1
    pd.testing.assert_frame_equal(log.read("stream_market_log"), got)
    # parts appended after a compaction still win over it
    log.append_frame("stream_market_log", view, _frame(["IBM"], [1], 3.0, "2026-01-03"))
    assert log.read("stream_market_log").set_index("symbol").loc["IBM", "last_close"] == 3.0


def test_dedupe_ties_keep_the_later_row() -> None:
    df = _frame(["SPY", "SPY"], [5, 5], 0.0, "2026-01-01")
    df.loc[1, "last_close"] = 9.0
    assert dedupe(df, "symbol")["last_close"].tolist() == [9.0]


# ---- checkpoints -------------------------------------------------------------------------


def _events(bars: pd.DataFrame, partition: int = 0) -> list[Event]:
    out = []
    for i, r in enumerate(bars.itertuples(index=False)):
        value = {
            "kind": "bar",
            "symbol": r.symbol,
            "event_time_ms": int(r.event_timestamp.value // 1_000_000),
            "open": r.open,
            "high": r.high,
            "low": r.low,
            "close": r.close,
            "volume": r.volume,
        }
        out.append(Event(TOPIC_BARS, partition, i, value, 0))
    return out


def _rows(processor, events: list[Event]) -> pd.DataFrame:  # noqa: ANN001
    frame = processor.process(events)[market_view().name].frame()
    return frame.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def test_checkpoint_restore_continues_like_the_original(local_settings: Settings) -> None:
    """Wiring: a processor restored from a checkpoint emits what the original emits next."""
    from stream_jobs.market_job import MarketProcessor

    bars = load_intraday_bars(local_settings.data_dir, start="2013-10-07", end="2013-10-09")
    events = _events(bars)
    head, tail = events[:3000], events[3000:]
    assert len(tail) > 1000
    original = MarketProcessor()
    original.process(head)
    store = ck.FileCheckpointStore(local_settings.profile_dir / "checkpoints")
    writer = ck.Checkpointer(store, "t.group")
    writer.save(original, 0, {TOPIC_BARS: 3000})
    restored = MarketProcessor()
    ckpt = ck.Checkpointer(store, "t.group").load(0)
    assert ckpt is not None and ckpt.offsets == {TOPIC_BARS: 3000}
    ck.restore_partition_state(restored, 0, ckpt.state)
    a, b = _rows(original, tail), _rows(restored, tail)
    assert len(a) == len(tail)
    pd.testing.assert_frame_equal(
        a.drop(columns="created_timestamp"), b.drop(columns="created_timestamp")
    )
    assert a["anomaly_warm"].max() == 1  # River models carried over, not restarted


def _checkpoint_store(kind: str, settings: Settings, request: pytest.FixtureRequest):  # noqa: ANN202
    if kind == "file":
        return ck.FileCheckpointStore(settings.profile_dir / "checkpoints")
    db = request.getfixturevalue("pg_database")
    return ck.PostgresCheckpointStore(f"host=127.0.0.1 port=5432 user=postgres dbname={db}")


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
@pytest.mark.parametrize("kind", ["file", "PostgreSQL"])
def test_restore_takes_over_the_loaded_arrays_once(
    local_settings: Settings, request: pytest.FixtureRequest, kind: str, background: bool
) -> None:
    """Wiring, every store and both write paths: the restored catalog state and River arrays are
    views of the buffer the store loaded (aligned, writable: no copy between load and the job),
    and continue like the original; restoring the same decoded state again copies instead (no
    memory shared between two processors)."""
    from stream_jobs.market_job import MarketProcessor

    bars = load_intraday_bars(local_settings.data_dir, start="2013-10-07", end="2013-10-09")
    events = _events(bars)
    head, tail = events[:3000], events[3000:4500]
    original = MarketProcessor()
    original.process(head)
    store = _checkpoint_store(kind, local_settings, request)
    writer = ck.Checkpointer(store, f"t.adopt.{background}")
    if background:
        writer.save_async(original, 0, {TOPIC_BARS: 3000})
    else:
        writer.save(original, 0, {TOPIC_BARS: 3000})
    writer.close()
    loaded = store.load(writer.group, 0)
    memory = np.frombuffer(loaded, dtype=np.uint8)
    state = ck.decode(loaded).state
    first, second = MarketProcessor(), MarketProcessor()
    ck.restore_partition_state(first, 0, state)
    ck.restore_partition_state(second, 0, state)
    op = first.operators[(TOPIC_BARS, 0)]
    taken = [op._state, op._last_ts, first.anomaly.l_mass, first.anomaly.r_mass, first.anomaly.hi]
    for arr in taken:
        assert np.shares_memory(arr, memory) and arr.flags.writeable and arr.flags.aligned
    again = second.operators[(TOPIC_BARS, 0)]
    for arr in (again._state, again._last_ts, second.anomaly.l_mass, second.anomaly.r_mass):
        assert not np.shares_memory(arr, memory) and arr.flags.writeable
    expected = _rows(original, tail).drop(columns="created_timestamp")
    for restored in (first, second):
        got = _rows(restored, tail).drop(columns="created_timestamp")
        pd.testing.assert_frame_equal(expected, got)
    store.close() if hasattr(store, "close") else None


class _HeldStore:
    """A file store whose `save` waits until the test lets it go (a slow background write)."""

    def __init__(self, inner: ck.FileCheckpointStore) -> None:
        import threading

        self.inner = inner
        self.go = threading.Event()
        self.fail = False

    def save(self, group: str, partition: int, blob: bytes, background: bool = False) -> None:
        assert self.go.wait(30), "the test never released the write"
        if self.fail:
            raise OSError("disk full (test)")
        self.inner.save(group, partition, blob, background)

    def load(self, group: str, partition: int) -> bytes | None:
        return self.inner.load(group, partition)

    def delete(self, group: str) -> None:
        self.inner.delete(group)


def test_background_checkpoint_holds_the_state_of_its_capture(local_settings: Settings) -> None:
    """The periodic round captures on the consumer thread and writes later: bars processed after
    the capture (River's ADWINs included, which are live objects) must not leak into it. The
    oracle is a processor that stopped at the capture and continues on the same bars."""
    from stream_jobs.market_job import MarketProcessor

    events = _events(
        load_intraday_bars(local_settings.data_dir, start="2013-10-07", end="2013-10-09")
    )
    head, more, tail = events[:3000], events[3000:4000], events[4000:]
    original, reference = MarketProcessor(), MarketProcessor()
    original.process(head)
    reference.process(head)
    store = _HeldStore(ck.FileCheckpointStore(local_settings.profile_dir / "checkpoints"))
    writer = ck.Checkpointer(store, "t.async")
    done: list[tuple[int, BaseException | None]] = []
    writer.save_async(original, 0, {TOPIC_BARS: 3000}, done=lambda n, e: done.append((n, e)))
    original.process(more)  # the consumer goes on while the write waits
    assert not done
    store.go.set()
    writer.close()
    assert len(done) == 1 and done[0][0] > 0 and done[0][1] is None and writer.written == 1
    ckpt = ck.Checkpointer(store, "t.async").load(0)
    assert ckpt is not None and ckpt.offsets == {TOPIC_BARS: 3000}
    restored = MarketProcessor()
    ck.restore_partition_state(restored, 0, ckpt.state)
    a, b = _rows(reference, more + tail), _rows(restored, more + tail)
    assert len(a) == len(more) + len(tail)
    pd.testing.assert_frame_equal(
        a.drop(columns="created_timestamp"), b.drop(columns="created_timestamp")
    )
    assert len(_rows(original, more)) == 0  # it had folded them: late now, nothing emitted


def test_failed_background_checkpoint_is_reported_and_counted(local_settings: Settings) -> None:
    from stream_jobs.market_job import MarketProcessor

    proc = MarketProcessor()
    proc.process(_events(load_intraday_bars(local_settings.data_dir).head(200)))
    store = _HeldStore(ck.FileCheckpointStore(local_settings.profile_dir / "checkpoints"))
    store.fail = True
    store.go.set()
    writer = ck.Checkpointer(store, "t.fail")
    done: list[tuple[int, BaseException | None]] = []
    writer.save_async(proc, 0, {TOPIC_BARS: 200}, done=lambda n, e: done.append((n, e)))
    writer.flush()
    assert writer.failed == 1 and writer.written == 0
    assert len(done) == 1 and isinstance(done[0][1], OSError)
    assert store.load("t.fail", 0) is None


@pytest.mark.parametrize("field", ["river", "format", "families", "state_slots", "anomaly"])
def test_checkpoint_from_other_code_is_refused(local_settings: Settings, field: str) -> None:
    from stream_jobs.market_job import MarketProcessor

    store = ck.FileCheckpointStore(local_settings.profile_dir / "checkpoints")
    proc = MarketProcessor()
    proc.process(_events(load_intraday_bars(local_settings.data_dir).head(50)))
    ck.Checkpointer(store, "g").save(proc, 0, {TOPIC_BARS: 50})
    path = store.path("g", 0)
    blob = path.read_bytes()
    header = ck.read_header(blob)
    header[field] = {"x": "other"} if field == "families" else "0.0-other"
    end = blob.index(b"\n", len(ck.MAGIC))
    path.write_bytes(ck.MAGIC + json.dumps(header).encode() + blob[end:])
    loader = ck.Checkpointer(store, "g")
    assert loader.load(0) is None
    assert loader.refused == 1
    with pytest.raises(ck.CheckpointMismatch, match=field):
        ck.decode(path.read_bytes())


def test_postgres_checkpoint_round_trip_is_byte_exact(
    local_settings: Settings, pg_database: str
) -> None:
    """PostgreSQL store: a real market checkpoint comes back byte for byte (stored compressed)
    and restores; a raw row as older versions wrote it still loads."""
    import psycopg

    from stream_jobs.market_job import MarketProcessor

    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database}"
    with psycopg.connect(dsn, autocommit=True) as conn:  # the table as an older version made it
        conn.execute(
            "CREATE TABLE IF NOT EXISTS stream_checkpoints (group_id text, partition int, "
            "blob bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (group_id, partition))"
        )
    proc = MarketProcessor()
    proc.process(_events(load_intraday_bars(local_settings.data_dir).head(1500)))
    writer = ck.Checkpointer(ck.PostgresCheckpointStore(dsn), "pg.group")
    writer.save(proc, 0, {TOPIC_BARS: 1500})
    blob = ck.encode(ck.Checkpoint("x", 0, {}, ck.partition_state(proc, 0)))
    store = ck.PostgresCheckpointStore(dsn)
    store.save("pg.bytes", 3, blob)
    assert store.load("pg.bytes", 3) == blob
    with psycopg.connect(dsn, autocommit=True) as conn:  # a raw row, as older versions wrote it
        conn.execute(
            "INSERT INTO stream_checkpoints (group_id, partition, blob) VALUES ('pg.raw', 1, %b)",
            (blob,),
        )
    assert store.load("pg.raw", 1) == blob
    with psycopg.connect(dsn, autocommit=True) as conn:  # zlib, as the version before LZ4 wrote it
        conn.execute(
            "INSERT INTO stream_checkpoints (group_id, partition, blob) VALUES ('pg.zlib', 1, %b)",
            (zlib.compress(blob, 1),),
        )
    assert store.load("pg.zlib", 1) == blob
    stored = ck.compress(blob)  # this version's rows: LZ4 behind its own magic
    assert stored.startswith(ck.LZ4_MAGIC) and len(stored) < len(blob) // 2
    harder = ck.compress(blob, ck.LZ4_HC_LEVEL)  # background saves: LZ4-HC, the same frames
    assert len(harder) < len(stored) and ck.decompress(harder) == blob
    store.save("pg.hc", 2, blob, background=True)
    assert store.load("pg.hc", 2) == blob
    got = ck.Checkpointer(ck.PostgresCheckpointStore(dsn), "pg.group").load(0)
    assert got is not None and got.offsets == {TOPIC_BARS: 1500}
    restored = MarketProcessor()
    ck.restore_partition_state(restored, 0, got.state)
    assert sorted(restored.anomaly.slot_of) == sorted(proc.anomaly.slot_of)


# ---- bootstrap ---------------------------------------------------------------------------


def test_bootstrapped_symbols_equal_batch_over_the_full_history(local_settings: Settings) -> None:
    """The topic holds only the last day; the processor's first rows equal full-history batch."""
    from stream_jobs.market_job import MarketProcessor
    from transforms import compute_features

    history = load_intraday_bars(local_settings.data_dir, end="2013-10-11")
    day = load_intraday_bars(local_settings.data_dir, start="2013-10-11", end="2013-10-12")
    proc = MarketProcessor(score_anomalies=False)
    boot = Bootstrapper(BarHistory(pd.concat([history, day]), "test"))
    events = _events(day)
    folded = boot.before_process(proc, events)
    assert folded == len(history)  # everything strictly before each symbol's first streamed bar
    rows = _rows(proc, events)
    full = compute_features(pd.concat([history, day], ignore_index=True), bar_frequency="1min")
    full = full[full["event_timestamp"] >= day["event_timestamp"].min()].reset_index(drop=True)
    assert len(rows) == len(full) == len(day)
    names = [c for c in full.columns if c not in ("symbol", "event_timestamp")]
    np.testing.assert_allclose(
        rows[names].to_numpy(dtype=float), full[names].to_numpy(dtype=float), rtol=1e-9, atol=1e-12
    )
    # without the bootstrap the same day is NOT batch (windows up to 252 bars need history)
    cold = _rows(MarketProcessor(score_anomalies=False), _events(day))
    assert not np.allclose(
        cold[names].to_numpy(dtype=float), full[names].to_numpy(dtype=float), equal_nan=True
    )


def test_account_checkpoint_restore_continues_like_the_original(local_settings: Settings) -> None:
    """Wiring: the account job's partition state survives a checkpoint round trip."""
    from stream_jobs.account_job import AccountProcessor
    from stream_jobs.schemas import decode
    from stream_jobs.simulator import account_messages

    bars = load_intraday_bars(local_settings.data_dir, start="2013-10-07", end="2013-10-08")
    events = [
        Event(topic, 0, i, decode(topic, value), 0)
        for i, (topic, (_k, value, _ms)) in enumerate(account_messages(bars))
    ]
    half = len(events) // 2
    original = AccountProcessor()
    original.process(events[:half])
    store = ck.FileCheckpointStore(local_settings.profile_dir / "checkpoints")
    ck.Checkpointer(store, "acc").save(original, 0, {"trades": half})
    restored = AccountProcessor()
    ck.restore_partition_state(restored, 0, ck.Checkpointer(store, "acc").load(0).state)
    view = original.view.name
    a = original.process(events[half:])[view].rows()
    b = restored.process(events[half:])[view].rows()
    assert len(a) > 50 and a == b
