"""The offline-log writer thread of a stream job: log appends off the consumer's critical path.

Why a thread: a log append (COPY into PostgreSQL, a Parquet part locally) is I/O and C code that
releases the GIL, yet it used to run between a batch's online write and its offset commit, on the
consumer thread, so every batch waited for it. Here the consumer hands each batch's log frames to
this writer and goes on with the next batch; it commits a batch's offsets only when the writer
reports that batch durable (`StreamLoop._reap`), so at-least-once holds exactly as before:

- **Bounded**: at most `max_pending` batches are submitted and not yet written; `submit` blocks
  beyond that (backpressure: a slow or retrying log slows the consumer, never grows memory).
- **Coalesced**: the writer takes every batch waiting when it starts a write and appends them as
  one COPY / one Parquet part per table (fewer, larger writes when it falls behind; one batch at a
  time when it keeps up, which keeps the log fresh).
- **In order**: batches are written and reported in submission order, so committed offsets only
  move forward.
- **Failures**: a service error is retried under the job's retry policy (`retry_call`); when that
  gives up (or the error is a configuration error) the writer stops, and the consumer raises it at
  its next `results()` without committing anything after it. Any other error (bad data) is
  retried entity by entity: the entities whose rows the log refuses are reported back, and the
  consumer dead-letters their messages (`write_error`); nothing else is lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from loguru import logger

from finfeast import retry
from stream_jobs.views import ViewSpec

if TYPE_CHECKING:
    from stream_jobs.view_rows import FeatureBlock


@dataclass
class LogPart:
    """One batch's rows for one log table; `frame` builds them (on the writer thread, later).

    So `frame` must read only data the processor never changes afterwards: the processors return
    fresh objects per batch (`ViewRows` over a new DataFrame / new per-row dicts).
    """

    table: str
    view: ViewSpec
    frame: Callable[[], pd.DataFrame]
    exclude: frozenset[str] = frozenset()  # entities not written online: left out of the log
    source: FeatureBlock | None = None  # the processor's arrays, if any (`ViewRows.source`)


@dataclass
class LogResult:
    """A written batch: its sequence number and the entities the log refused (entity -> why)."""

    seq: int
    bad: dict[str, str] = field(default_factory=dict)


class LogWriter:
    """A thread appending submitted batches to the offline log, in order, coalesced, bounded."""

    def __init__(
        self,
        append: Callable[[str, ViewSpec, pd.DataFrame], Any],
        retry_call: Callable[..., Any],
        append_sources: Callable[[str, ViewSpec, list[FeatureBlock]], Any] | None = None,
        max_pending: int = 8,
        name: str = "offline-log",
        before_write: Callable[[int], None] | None = None,
    ) -> None:
        self.append = append
        self.retry_call = retry_call
        self.append_sources = append_sources  # fast path; None result = use the frames
        self.max_pending = max(1, max_pending)
        self.before_write = before_write  # test hook: called with the write number (1, 2, ...)
        self.writes = 0  # appends done (one per table per coalesced group)
        self.direct = 0  # of which straight from the processors' frames (`append_sources`)
        self.batches = 0  # batches written
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, list[LogPart]]] = deque()
        self._done: deque[LogResult] = deque()
        self._in_flight = 0  # submitted, not yet in `_done`
        self._seq = 0
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- consumer side ------------------------------------------------------------------
    def submit(self, parts: list[LogPart]) -> int:
        """Queue one batch's parts; its sequence number. Blocks while `max_pending` are pending."""
        with self._cond:
            while self._in_flight >= self.max_pending and self._error is None:
                self._cond.wait(0.5)
            self._raise_if_failed()
            self._seq += 1
            self._queue.append((self._seq, parts))
            self._in_flight += 1
            self._cond.notify_all()
            return self._seq

    def results(self) -> list[LogResult]:
        """The batches written since the last call, in order; raises the error that stopped it."""
        with self._cond:
            out = list(self._done)
            self._done.clear()
            if not out:
                self._raise_if_failed()
            return out

    def drain(self) -> list[LogResult]:
        """Wait until every submitted batch is written (or the writer failed); `results()`."""
        with self._cond:
            while self._in_flight and self._error is None:
                self._cond.wait(0.5)
        return self.results()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._in_flight

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread once the batches already submitted are written (or it failed)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # ---- writer thread ------------------------------------------------------------------
    def _take(self) -> list[tuple[int, list[LogPart]]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait(0.5)
            if not self._queue:
                return None
            group = list(self._queue)  # at most max_pending batches
            self._queue.clear()
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            try:
                bad = self._write(group)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                logger.error("offline log writer stopped: {}", retry.one_line(exc))
                with self._cond:
                    self._error = exc
                    self._queue.clear()
                    self._in_flight = 0
                    self._cond.notify_all()
                return
            with self._cond:
                for seq, _parts in group:
                    self._done.append(LogResult(seq, dict(bad)))
                self._in_flight -= len(group)
                self.batches += len(group)
                self._cond.notify_all()

    def _write(self, group: list[tuple[int, list[LogPart]]]) -> dict[str, str]:
        """Append a group's rows, one write per table; the entities the log refused."""
        tables: dict[str, tuple[ViewSpec, list[LogPart]]] = {}
        for _seq, parts in group:
            for part in parts:
                tables.setdefault(part.table, (part.view, []))[1].append(part)
        bad: dict[str, str] = {}
        for table, (view, parts) in tables.items():
            self.writes += 1
            if self.before_write is not None:
                self.before_write(self.writes)
            if self._append_fast(table, view, parts):
                continue
            frames = []
            for part in parts:
                frame = part.frame()
                if part.exclude:
                    frame = frame[~frame[part.view.join_key].isin(part.exclude)]
                if len(frame):
                    frames.append(frame)
            if frames:
                df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
                bad.update(self._isolating_append(table, view, df))
        return bad

    def _append_fast(self, table: str, view: ViewSpec, parts: list[LogPart]) -> bool:
        """The processors' arrays in one append, if every part has them and the log takes them
        (True); any failure other than a dead service falls back to the frames (isolation)."""
        if self.append_sources is None or any(p.source is None for p in parts):
            return False
        sources = [b for p in parts if len(b := p.source.without(p.exclude))]
        if not sources:
            return True
        try:
            done = self.retry_call(
                f"offline log {table}", self.append_sources, table, view, sources
            )
        except Exception as exc:  # noqa: BLE001 - classified below
            if retry.classify(exc) != retry.OTHER:
                raise
            return False
        if done is None:
            return False
        self.direct += 1
        return True

    def _isolating_append(self, table: str, view: ViewSpec, df: pd.DataFrame) -> dict[str, str]:
        what = f"offline log {table}"
        try:
            self.retry_call(what, self.append, table, view, df)
            return {}
        except Exception as exc:  # noqa: BLE001 - classified below
            if retry.classify(exc) != retry.OTHER:
                raise
            logger.warning("{} failed ({}); per entity", what, retry.one_line(exc))
        bad: dict[str, str] = {}
        for entity, part in df.groupby(view.join_key, sort=False):
            try:
                self.retry_call(what, self.append, table, view, part)
            except Exception as exc:  # noqa: BLE001
                if retry.classify(exc) != retry.OTHER:
                    raise
                bad[str(entity)] = f"{what}: {type(exc).__name__}: {exc}"
        return bad
