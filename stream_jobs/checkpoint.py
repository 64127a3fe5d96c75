"""Checkpointed operator state: per partition, the job's state with the offsets it corresponds to.

Why: a process taking over a partition must compute what the previous owner would have, without
re-reading the partition from its start (unbounded, and wrong once retention is shorter than the
longest window). After the offset commit of a batch, at most every `every_seconds` or
`every_messages`, each assigned partition's state (catalog operator, the anomaly scorer's arrays,
per-symbol stamps; or the account states) is written with the offsets just committed. The next
owner restores it and replays only [checkpoint offset, committed offset) (`StreamLoop._rebuild`).

Format: `MAGIC` + one JSON header line + a pickle (protocol 5) + the pickle's out-of-band buffers
(the state's arrays, copied once, sizes in the header), each at an `ALIGN`-byte offset of the
blob. Decoded from a writable, aligned buffer (what both stores' `load` return), the arrays are
views of it that a restore takes over as the live state (`finfeast.state_arrays.adopt`): no copy
between the store's read and the running job. The header carries the format version,
the River version (River pickles do not load across versions), the catalog's bar-family code
hashes, the engine's state layout size and the anomaly kernel's version + tree layout hash; any
mismatch is refused loudly (logged, counted) and the partition falls back to bootstrap from
offline history (`stream_jobs.bootstrap`), never to a state computed by other code. A scorer
state of another anomaly config than the running one raises CheckpointMismatch at restore, before
any state changes.

Stores (the profile's): local = one file per (group, partition) under
`<workdir>/<profile>/checkpoints/<group>/` (temp file + atomic rename); prod = a PostgreSQL table
`stream_checkpoints` (one row per (group, partition), upserted).

The catalog operator travels as its pickle state (`OnlineFeatures.__getstate__`: a versioned
header, the state rows and last event times as arrays, the corporate-action book) and comes back
through `OnlineFeatures.from_state`, which checks the header as `OnlineFeatures.restore` does.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError

# 3: River models as the scorer's arrays (AnomalyScorer.snapshot); 4: arrays and the catalog
# state's bytes out-of-band after the pickle (pickle protocol 5), their sizes in the header;
# 5: buffers at aligned offsets, the catalog state as arrays (restores take them over)
FORMAT_VERSION = 5
MAGIC = b"FFCKPT1\n"
ALIGN = 64  # bytes: each buffer's offset in the blob (numba wants aligned arrays; cache lines)


class CheckpointMismatch(FinfeastError):
    """A checkpoint written by other code (format, River, catalog or state layout differ)."""


@dataclass
class Checkpoint:
    """One partition's state and the offsets (next offset to read, per topic) it corresponds to."""

    group: str
    partition: int
    offsets: dict[str, int]
    state: Any
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))


# ---- versions --------------------------------------------------------------------------
def code_versions() -> dict[str, Any]:
    """What a state was computed by: format, River, bar-family code hashes, engine state layout,
    anomaly kernel version and tree layout."""
    import river

    from transforms import catalog
    from transforms.engine import STATE_SLOTS

    return {
        "format": FORMAT_VERSION,
        "river": river.__version__,
        "families": {
            name: fam.code_hash
            for name, fam in sorted(catalog.FAMILIES.items())
            if fam.kind == "bar"
        },
        "state_slots": int(STATE_SLOTS),
        "anomaly": anomaly_versions(),
    }


def pickle_state(state: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """The pickle of `state` (protocol 5) and its out-of-band buffers (contiguous arrays and
    `PickleBuffer`-wrapped bytes): the big parts are referenced, not copied into the pickle."""
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(state, protocol=5, buffer_callback=buffers.append), buffers


def encode(ckpt: Checkpoint) -> bytes:
    return encode_payload(ckpt, *pickle_state(ckpt.state))


def encode_payload(
    ckpt: Checkpoint, payload: bytes, buffers: list[pickle.PickleBuffer] | tuple = ()
) -> bytes:
    """The blob of `ckpt` whose state is already pickled (`pickle_state`): MAGIC, header,
    pickle, buffers (one copy of each, zero-padded to `ALIGN`-byte offsets)."""
    raws = [b.raw() for b in buffers]
    header = {
        **code_versions(),
        "group": ckpt.group,
        "partition": ckpt.partition,
        "offsets": ckpt.offsets,
        "created_ms": ckpt.created_ms,
        "pickle_bytes": len(payload),
        "buffers": [r.nbytes for r in raws],
        "align": ALIGN,
    }
    parts: list[Any] = [MAGIC, json.dumps(header, sort_keys=True).encode(), b"\n", payload]
    pos = sum(len(p) for p in parts)
    for raw in raws:
        parts += (bytes(-pos % ALIGN), raw)
        pos += -pos % ALIGN + raw.nbytes
    return b"".join(parts)


def _bytes_view(blob: Any) -> memoryview:
    """`blob` (bytes, bytearray, memoryview, an Arrow buffer) as a flat memoryview of bytes."""
    view = memoryview(blob)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _header_end(view: memoryview) -> int:
    """Index of the newline that ends the header line (searched without copying the blob)."""
    step = 1 << 16
    for chunk in range(len(MAGIC), len(view), step):
        found = bytes(view[chunk : chunk + step]).find(b"\n")
        if found >= 0:
            return chunk + found
    raise CheckpointMismatch("not a finfeast checkpoint (no header line)")


def read_header(blob: Any) -> dict[str, Any]:
    view = _bytes_view(blob)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise CheckpointMismatch("not a finfeast checkpoint (bad magic bytes)")
    return json.loads(bytes(view[len(MAGIC) : _header_end(view)]))


def decode(blob: Any) -> Checkpoint:
    """The checkpoint in `blob`; CheckpointMismatch when other code wrote it (nothing unpickled).
    Arrays of the state are views of `blob`, not copies: writable when `blob` is (the stores'
    `load` return writable buffers, so a restore takes them over instead of copying)."""
    header = read_header(blob)
    expected = code_versions()
    diffs = [k for k, v in expected.items() if header.get(k) != v]
    if diffs:
        detail = "; ".join(f"{k}: stored {header.get(k)!r}, running {expected[k]!r}" for k in diffs)
        raise CheckpointMismatch(f"checkpoint written by other code ({detail})")
    view = _bytes_view(blob)
    start = _header_end(view) + 1
    pickled = view[start : start + int(header["pickle_bytes"])]
    pos = start + len(pickled)
    align = int(header.get("align", 1))
    buffers = []
    for size in header["buffers"]:
        pos += -pos % align
        buffers.append(view[pos : pos + size])
        pos += size
    if pos != len(blob):
        raise ValueError(f"checkpoint of {len(blob)} bytes, its header accounts for {pos}")
    state = pickle.loads(pickled, buffers=buffers)  # noqa: S301 - our own store, header checked
    return Checkpoint(
        header["group"],
        int(header["partition"]),
        {t: int(o) for t, o in header["offsets"].items()},
        state,
        int(header["created_ms"]),
    )


# ---- River models ------------------------------------------------------------------------
# The scorer's state is already arrays (stream_jobs.anomaly.AnomalyScorer: masses, counters,
# scaler bounds per symbol slot, plus River's ADWIN objects): a partition's part of it is one
# fancy-index copy per array, pickled as raw buffers; no per-node Python on write or restore.


def anomaly_versions() -> dict[str, Any]:
    """What a scorer state was computed by: the kernel's version and the default tree layout."""
    from stream_jobs.anomaly import DRIFT_INPUT, AnomalyConfig
    from stream_jobs.hst_kernel import KERNEL_VERSION

    return {
        "kernel": KERNEL_VERSION,
        "layout": AnomalyConfig().layout().fingerprint,
        "drift_input": DRIFT_INPUT,  # ADWINs fed returns (before) must not go on with scores
    }


# ---- processor state per partition -----------------------------------------------------
def partition_state(processor: Any, partition: int) -> Any:
    """The state of `processor` that belongs to partition number `partition` (all its topics)."""
    own = getattr(processor, "snapshot_partition", None)
    if own is not None:
        return own(partition)
    if hasattr(processor, "operators"):  # market job
        return _market_state(processor, partition)
    if hasattr(processor, "book"):  # account job
        return _account_state(processor, partition)
    raise FinfeastError(f"{type(processor).__name__} has no checkpointable state")


def restore_partition_state(processor: Any, partition: int, state: Any) -> None:
    own = getattr(processor, "restore_partition", None)
    if own is not None:
        own(partition, state)
    elif hasattr(processor, "operators"):
        _restore_market(processor, partition, state)
    elif hasattr(processor, "book"):
        _restore_account(processor, partition, state)
    else:
        raise FinfeastError(f"{type(processor).__name__} has no checkpointable state")


def _market_state(proc: Any, partition: int) -> dict[str, Any]:
    ops = {  # its arrays out-of-band in the checkpoint's pickle (`pickle_state`)
        tp: (type(op), op.__getstate__()) for tp, op in proc.operators.items() if tp[1] == partition
    }
    symbols = [s for s, tp in proc.partition_of.items() if tp[1] == partition]
    return {
        "operators": ops,
        "symbols": {
            s: {
                "partition_of": proc.partition_of[s],
                "last_bar_ms": proc.last_bar_ms.get(s),
                "last_tick_ms": proc.last_tick_ms.get(s),
                "tick_count": proc.tick_counts.get(s),
            }
            for s in symbols
        },
        "anomaly": proc.anomaly.snapshot(symbols) if proc.anomaly is not None else None,
    }


def _restore_market(proc: Any, partition: int, state: Mapping[str, Any]) -> None:
    from stream_jobs.anomaly import AnomalyStateMismatch

    scores = state["anomaly"] if proc.anomaly is not None else None
    if scores is not None:
        try:  # before any state changes: a config other than the header's default is refused
            proc.anomaly.check(scores)
        except AnomalyStateMismatch as exc:
            raise CheckpointMismatch(str(exc)) from exc
    for tp, (kind, saved) in state["operators"].items():
        proc.operators[tuple(tp)] = kind.from_state(saved)
    for s, st in state["symbols"].items():
        proc.partition_of[s] = tuple(st["partition_of"])
        for attr, key in (
            ("last_bar_ms", "last_bar_ms"),
            ("last_tick_ms", "last_tick_ms"),
            ("tick_counts", "tick_count"),
        ):
            if st[key] is not None:
                getattr(proc, attr)[s] = st[key]
    if scores is not None:
        proc.anomaly.restore(scores)


def _account_state(proc: Any, partition: int) -> dict[str, Any]:
    """Every value of an account (its prices, positions, dedup ids) lives in its AccountState."""
    accounts = [a for a, tp in proc.partition_of.items() if tp[1] == partition]
    book = proc.book
    return {
        "accounts": {a: book.accounts[a] for a in accounts if a in book.accounts},
        "partition_of": {a: proc.partition_of[a] for a in accounts},
    }


def _restore_account(proc: Any, partition: int, state: Mapping[str, Any]) -> None:
    proc.book.accounts.update(state["accounts"])
    proc.partition_of.update({a: tuple(tp) for a, tp in state["partition_of"].items()})


# ---- stores ----------------------------------------------------------------------------
class CheckpointStore(Protocol):
    def save(self, group: str, partition: int, blob: bytes, background: bool = False) -> None:
        """Store `blob`; `background`: nobody waits for this write (a periodic round), so the
        store may spend more time on it (compress harder) to make its restore cheaper."""
        ...

    def load(self, group: str, partition: int) -> Any:
        """The stored blob (bytes-like; writable buffers let a restore take its arrays over),
        or None."""
        ...

    def delete(self, group: str) -> None: ...


def _safe(group: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in group)


class FileCheckpointStore:
    """Local profile: `<root>/<group>/partition-<n>.ckpt`, replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, group: str, partition: int) -> Path:
        return self.root / _safe(group) / f"partition-{partition}.ckpt"

    def save(self, group: str, partition: int, blob: bytes, background: bool = False) -> None:
        path = self.path(group, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)

    def load(self, group: str, partition: int) -> memoryview | None:
        """The blob in a fresh writable buffer (numpy's: aligned; not zero-filled first)."""
        import numpy as np

        path = self.path(group, partition)
        try:
            with path.open("rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                buf = np.empty(size, dtype=np.uint8)
                got = f.readinto(memoryview(buf))
        except FileNotFoundError:
            return None
        if got != size:
            raise ValueError(f"checkpoint file {path} changed while read ({got} of {size} bytes)")
        return memoryview(buf)

    def delete(self, group: str) -> None:
        folder = self.root / _safe(group)
        for p in folder.glob("*.ckpt"):
            p.unlink(missing_ok=True)


LZ4_MAGIC = b"FFLZ4\n"  # + the raw size (8 bytes, big-endian) + an LZ4 frame


LZ4_HC_LEVEL = 6  # background writes; see PostgresCheckpointStore for the measured trade


def compress(blob: bytes, level: int | None = None) -> bytes:
    """`blob` as stored in PostgreSQL: LZ4 (Arrow's codec: pyarrow comes with Feast) at
    `level` (None: LZ4's fast default); the GIL is released while it runs."""
    import pyarrow as pa

    codec = pa.Codec("lz4", compression_level=level) if level else pa.Codec("lz4")
    packed = codec.compress(blob, asbytes=True)
    return b"".join((LZ4_MAGIC, len(blob).to_bytes(8, "big"), packed))


def decompress(stored: bytes) -> Any:
    """The blob of a stored row: LZ4 (this version; into a fresh writable, 64-byte aligned
    Arrow buffer, returned as a memoryview), zlib (before it) or raw (before that)."""
    if stored.startswith(MAGIC):
        return stored
    if stored.startswith(LZ4_MAGIC):
        import pyarrow as pa

        start = len(LZ4_MAGIC) + 8
        size = int.from_bytes(stored[len(LZ4_MAGIC) : start], "big")
        view = memoryview(stored)[start:]
        out = pa.decompress(view, decompressed_size=size, codec="lz4")
        return memoryview(out).cast("B")  # an Arrow buffer exports signed chars ("b")
    return zlib.decompress(stored)


class PostgresCheckpointStore:
    """Prod profile: table `stream_checkpoints` (group_id, partition) -> blob, upserted.

    The blob is stored LZ4-compressed (`compress`) and travels as a binary parameter / result:
    PG's own TOAST compression (pglz) of a raw ~10 MB blob (500 symbols) cost 0.37 s, zlib level
    1 on the client 55 ms to compress and 24 ms to expand it, LZ4 12 ms and 3 ms (2.15 MB
    instead of zlib's 1.87). (Switching the column to STORAGE EXTERNAL by an ALTER TABLE on
    first use instead made the three-consumer handover test hang; not diagnosed further.) Rows
    written zlib-compressed or raw by older versions still load.

    Two levels, because a restore's cost is mostly the compressed size (reading the TOASTed
    value grows faster than linearly past ~1.6 MB here) and LZ4-HC expands as fast as LZ4 or
    faster: a background save (a periodic round, on the checkpointer's thread, GIL released)
    uses LZ4-HC level `LZ4_HC_LEVEL` (500 symbols: 1.40 MB instead of 2.06, ~140 ms to compress
    instead of ~20; its restore 8-9 ms instead of 13-14); a foreground save (revoke, shutdown),
    which the handover waits for, uses the fast level."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._ready = False
        self._conn: Any = None  # one autocommit connection, reused (a connect cost ~3 ms)
        self._lock = threading.Lock()  # the checkpointer's thread and the consumer's share it

    def _connect(self):  # noqa: ANN202
        import psycopg

        from finfeast.errors import ServiceUnavailable

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=5, autocommit=True)
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(f"PostgreSQL unreachable for checkpoints: {exc}") from exc
        if not self._ready:
            from finfeast.offline import lock_ddl

            with conn.transaction():
                # processes starting together on a new database
                lock_ddl(conn, "stream_checkpoints")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS stream_checkpoints (group_id text, partition int, "
                    "blob bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
                    "PRIMARY KEY (group_id, partition))"
                )
            self._ready = True
        self._conn = conn
        return conn

    def _execute(self, sql: str, params: tuple, **kwargs: Any) -> Any:
        """One statement (its own transaction) on the shared connection; a broken connection is
        dropped so the next call reconnects."""
        import psycopg

        with self._lock:
            conn = self._connect()
            try:
                cur = conn.execute(sql, params, **kwargs)
                return cur.fetchone() if cur.description is not None else None
            except psycopg.OperationalError:
                conn.close()
                self._conn = None
                raise

    def save(self, group: str, partition: int, blob: bytes, background: bool = False) -> None:
        packed = compress(blob, LZ4_HC_LEVEL if background else None)  # outside the lock
        self._execute(
            "INSERT INTO stream_checkpoints (group_id, partition, blob) VALUES (%s, %s, %b) "
            "ON CONFLICT (group_id, partition) DO UPDATE SET blob = EXCLUDED.blob, "
            "updated_at = now()",
            (group, partition, packed),
        )

    def load(self, group: str, partition: int) -> Any:
        row = self._execute(
            "SELECT blob FROM stream_checkpoints WHERE group_id = %s AND partition = %s",
            (group, partition),
            binary=True,  # raw bytes; the text form is hex, twice the size (0.08 -> 0.02 s)
        )
        return None if row is None else decompress(bytes(row[0]))

    def delete(self, group: str) -> None:
        self._execute("DELETE FROM stream_checkpoints WHERE group_id = %s", (group,))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_checkpoints(settings: Settings) -> CheckpointStore:
    """The checkpoint store of the settings' profile."""
    if settings.profile == "prod":
        return PostgresCheckpointStore(settings.pg_dsn)
    return FileCheckpointStore(settings.profile_dir / "checkpoints")


@dataclass
class CheckpointPolicy:
    """When to write: at most every `every_seconds` or `every_messages` (whichever comes first)."""

    every_seconds: float = 10.0
    every_messages: int = 50_000


@dataclass
class Captured:
    """A partition's state taken on the consumer thread: the checkpoint's coordinates and its
    pickled state. Pickled there, not later, because the state holds live objects (River's
    ADWINs) that the next batch changes; the rest of a write works on these bytes only."""

    ckpt: Checkpoint
    payload: bytes
    buffers: list[pickle.PickleBuffer] = field(default_factory=list)


class Checkpointer:
    """Writes and restores one job's partition checkpoints (used by `StreamLoop`).

    A write has two phases, as Flink's asynchronous snapshots do: `capture` (on the consumer
    thread, between batches: the state copied and pickled, ~8 ms for 500 symbols) and `write`
    (header, LZ4, the store's INSERT or file: ~4x that). `save_async` runs the second phase on
    one background thread, so a checkpoint stalls the stream for the capture only; `save` runs
    both at once (on revoke and at shutdown, where the next owner must find the state). At most
    one round is in flight: `flush` waits for it, and the next round starts with a `flush`.
    A write that fails is logged and counted (`failed`): it only means a longer replay.
    """

    def __init__(
        self, store: CheckpointStore, group: str, policy: CheckpointPolicy | None = None
    ) -> None:
        self.store = store
        self.group = group
        self.policy = policy or CheckpointPolicy()
        self._since = 0
        self._last = time.monotonic()
        self.written = 0
        self.refused = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[Future[int]] = []

    def due(self, messages: int) -> bool:
        self._since += messages
        return (
            self._since >= self.policy.every_messages
            or time.monotonic() - self._last >= self.policy.every_seconds
        )

    def capture(self, processor: Any, partition: int, offsets: dict[str, int]) -> Captured:
        """Phase 1: the partition's state with its offsets, pickled; the out-of-band buffers
        are the state's own fresh copies (nothing the processor changes afterwards)."""
        ckpt = Checkpoint(self.group, partition, dict(offsets), None)
        payload, buffers = pickle_state(partition_state(processor, partition))
        return Captured(ckpt, payload, buffers)

    def write(self, captured: Captured, background: bool = False) -> int:
        """Phase 2: the blob into the store (`background`: on the checkpointer's thread, see
        `CheckpointStore.save`); its size in bytes. A failure is counted (`failed`, whichever
        thread writes) and re-raised."""
        try:
            blob = encode_payload(captured.ckpt, captured.payload, captured.buffers)
            self.store.save(self.group, captured.ckpt.partition, blob, background=background)
        except Exception:
            with self._lock:
                self.failed += 1
            raise
        with self._lock:
            self.written += 1
        return len(blob)

    def save(self, processor: Any, partition: int, offsets: dict[str, int]) -> int:
        """Write one partition's state with its offsets now; the blob size in bytes."""
        return self.write(self.capture(processor, partition, offsets))

    def save_async(
        self,
        processor: Any,
        partition: int,
        offsets: dict[str, int],
        done: Callable[[int, BaseException | None], None] | None = None,
    ) -> None:
        """Capture now, write on the background thread; `done(size, error)` runs there after."""
        captured = self.capture(processor, partition, offsets)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"checkpoint-{self.group}")

        def run() -> int:
            try:
                size = self.write(captured, background=True)
            except Exception as exc:  # noqa: BLE001 - reported to `done`, logged (`write` counts it)
                logger.warning(
                    "checkpoint of {}[{}] failed (a longer replay on takeover): {}",
                    self.group,
                    partition,
                    exc,
                )
                if done is not None:
                    done(0, exc)
                return 0
            if done is not None:
                done(size, None)
            return size

        self._inflight.append(self._pool.submit(run))

    def flush(self) -> None:
        """Wait for every write `save_async` started."""
        inflight, self._inflight = self._inflight, []
        for future in inflight:
            future.result()

    def close(self) -> None:
        """Finish the writes in flight, stop the thread, close the store's connection (if any);
        a later save starts them again."""
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def mark_saved(self) -> None:
        self._since = 0
        self._last = time.monotonic()

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's checkpoint, or None (none stored, or refused: logged loudly)."""
        blob = self.store.load(self.group, partition)
        if blob is None:
            return None
        try:
            return decode(blob)
        except (CheckpointMismatch, pickle.UnpicklingError, EOFError, ValueError) as exc:
            self.refused += 1
            logger.error(
                "checkpoint of {}[{}] REFUSED, falling back to bootstrap from offline history: {}",
                self.group,
                partition,
                exc,
            )
            return None
