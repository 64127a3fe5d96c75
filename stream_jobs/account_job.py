"""The account stream job: simulated trades and position marks -> per-account features."""

from __future__ import annotations

from collections.abc import Sequence

from stream_jobs.account_features import AccountBook
from stream_jobs.consumer import Event, Output
from stream_jobs.metrics import JobMetrics
from stream_jobs.offline_log import ACCOUNT_LOG
from stream_jobs.online_writer import Row
from stream_jobs.schemas import TOPIC_POSITIONS, TOPIC_TRADES
from stream_jobs.view_rows import ViewRows
from stream_jobs.views import account_view


class AccountProcessor:
    """Rolling trade counts/notionals, exposure, PnL and concentration per account."""

    name = "accounts"
    topics = (TOPIC_TRADES, TOPIC_POSITIONS)

    def __init__(self) -> None:
        self.view = account_view()
        self.outputs = (Output(self.view, ACCOUNT_LOG),)
        self.book = AccountBook()
        self.partition_of: dict[str, tuple[str, int]] = {}
        self._late = 0

    def process(self, events: Sequence[Event]) -> dict[str, ViewRows]:
        # One row per (account, millisecond): the state after every event of that instant in the
        # batch. The online store keeps the first row of an instant (strictly newer wins, as
        # Feast) and the offline log / training sets the last, so two rows at one instant would
        # disagree: an event at the instant of a row an EARLIER batch already emitted is folded
        # into the state without a row of its own (the account's next row carries it).
        latest: dict[tuple[str, int], dict] = {}
        emitted: dict[str, int] = {}  # account -> time of its last row before this batch
        # Event-time order inside a batch; at one millisecond trades before marks (as produced).
        for e in sorted(
            events, key=lambda e: (e.value["event_time_ms"], e.value["kind"] != "trade")
        ):
            value = e.value
            account = value["account_id"]
            if account not in emitted:
                state = self.book.accounts.get(account)
                emitted[account] = state.last_ms if state is not None else -1
            self.partition_of[account] = (e.topic, e.partition)
            if value["kind"] == "trade":
                feats = self.book.trade(value)
            else:
                feats = self.book.mark(value)
            if feats is None:
                self._late += 1
                continue
            if value["event_time_ms"] == emitted[account]:
                continue  # that instant's row is out already (see above)
            latest[(account, value["event_time_ms"])] = feats
        rows: list[Row] = [(account, ms, feats) for (account, ms), feats in latest.items()]
        return {self.view.name: ViewRows.from_rows(self.view, rows)}

    def warm(self, events: Sequence[Event]) -> None:
        late = self._late
        self.process(events)
        self._late = late

    def forget_partition(self, topic: str, partition: int) -> None:
        for account in [a for a, tp in self.partition_of.items() if tp[1] == partition]:
            self.book.forget(account)
            self.partition_of.pop(account, None)

    def observe(self, metrics: JobMetrics) -> None:
        if self._late:
            metrics.late.labels(metrics.job, TOPIC_TRADES).inc(self._late)
        self._late = 0
