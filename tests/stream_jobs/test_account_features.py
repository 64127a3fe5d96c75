"""Account features against independent computations on simulated trades at real prices."""

from __future__ import annotations

import pandas as pd
import pytest

from stream_jobs.account_features import AccountBook
from stream_jobs.replay import load_intraday_bars
from stream_jobs.schemas import decode
from stream_jobs.simulator import account_messages


@pytest.fixture(scope="module")
def events(data_dir) -> list[dict]:
    bars = load_intraday_bars(data_dir, start="2013-10-07", end="2013-10-09")
    return [decode(topic, value) for topic, (_k, value, _ms) in account_messages(bars)]


def test_simulated_activity_is_deterministic_and_labelled(data_dir) -> None:
    bars = load_intraday_bars(data_dir, start="2013-10-07", end="2013-10-08")
    first = list(account_messages(bars))
    second = list(account_messages(bars))
    assert first == second and len(first) > 100
    import orjson

    assert all(orjson.loads(m[1])["simulated"] is True for _t, m in first)


def test_total_pnl_equals_cash_flows_plus_position_value(events) -> None:
    """realized + unrealized (average cost) == -sum(signed qty * price) + sum(final qty * last price)."""
    book = AccountBook()
    last: dict[str, dict] = {}
    for e in events:
        feats = book.trade(e) if e["kind"] == "trade" else book.mark(e)
        if feats is not None:
            last[e["account_id"]] = feats
    trades = pd.DataFrame([e for e in events if e["kind"] == "trade"])
    trades["signed"] = trades["quantity"].where(trades["side"] == "buy", -trades["quantity"])
    for account, grp in trades.groupby("account_id"):
        cash = -(grp["signed"] * grp["price"]).sum()
        final_qty = grp.groupby("symbol")["signed"].sum()
        # each account is valued at its own last price per symbol: the newest of its own trades
        # and position marks (computed here from the raw events, not from the book)
        own = [e for e in events if e["account_id"] == account]
        prices = {}
        for e in sorted(own, key=lambda e: e["event_time_ms"]):
            prices[e["symbol"]] = e["price"] if e["kind"] == "trade" else e["mark_price"]
        value = sum(q * prices[s] for s, q in final_qty.items())
        state = book.accounts[account]
        f = state.features(state.last_ms, prices)
        assert f["realized_pnl"] + f["unrealized_pnl"] == pytest.approx(cash + value, abs=1e-6)
        assert f["net_exposure"] == pytest.approx(value, abs=1e-6)
    assert len(last) > 5


def test_rolling_counts_match_pandas_time_windows(events) -> None:
    book = AccountBook()
    got = []
    for e in events:
        if e["kind"] != "trade":
            continue
        f = book.trade(e)
        got.append((e["account_id"], e["event_time_ms"], f["trade_count_1h"], f["notional_1d"]))
    trades = pd.DataFrame([e for e in events if e["kind"] == "trade"])
    trades["ts"] = pd.to_datetime(trades["event_time_ms"], unit="ms")
    trades["notional"] = trades["quantity"] * trades["price"]
    expected = []
    for _account, grp in trades.groupby("account_id", sort=False):
        g = grp.set_index("ts")
        c1h = g["notional"].rolling("1h").count()
        n1d = g["notional"].rolling("1D").sum()
        expected += list(zip(grp.index, c1h.to_numpy(), n1d.to_numpy(), strict=True))
    expected.sort()
    assert [round(c) for _i, c, _n in expected] == [
        g[2]
        for g in sorted(zip(trades.index, got, strict=True), key=lambda x: x[0])
        for g in [g[1]]
    ]
    ours = [g[1][3] for g in sorted(zip(trades.index, got, strict=True), key=lambda x: x[0])]
    assert ours == pytest.approx([n for _i, _c, n in expected], rel=1e-12)


def test_redelivered_trade_changes_nothing(events) -> None:
    book = AccountBook()
    trade = next(e for e in events if e["kind"] == "trade")
    first = book.trade(trade)
    assert first is not None and first["trade_count_1h"] == 1
    assert book.trade(trade) is None
    assert (
        book.accounts[trade["account_id"]].features(trade["event_time_ms"], {})["trade_count_1d"]
        == 1
    )


def _rows(book: AccountBook, events: list[dict]) -> list[tuple]:
    out = []
    for e in events:
        feats = book.trade(e) if e["kind"] == "trade" else book.mark(e)
        if feats is not None:
            out.append((e["account_id"], e["event_time_ms"], tuple(sorted(feats.items()))))
    return out


def test_an_accounts_values_do_not_depend_on_the_other_accounts_of_its_process(events) -> None:
    """A takeover: a process holding only some accounts computes the same rows for them."""
    everything = _rows(AccountBook(), events)
    accounts = sorted({e["account_id"] for e in events})
    part = set(accounts[::3])  # another process's share of the accounts
    alone = _rows(AccountBook(), [e for e in events if e["account_id"] in part])
    assert alone == [r for r in everything if r[0] in part]
    assert len(alone) > 50


def test_dedup_memory_is_bounded_and_every_redelivery_is_caught(events) -> None:
    book = AccountBook()
    first = _rows(book, events)
    trades = [e for e in events if e["kind"] == "trade"]
    # bounded: only the ids at each account's newest trade millisecond are kept
    per_ms = pd.DataFrame(trades).groupby(["account_id", "event_time_ms"]).size().max()
    assert book.dedup_memory() <= len(book.accounts) * per_ms
    assert book.dedup_memory() < len(trades) / 10
    # exact: redelivering every event (all at or before the watermarks) changes no state; only
    # marks at an account's last mark time are re-applied, re-emitting the very same row
    states = {a: (s.realized_pnl, len(s.trades)) for a, s in book.accounts.items()}
    again = _rows(book, events)
    last_first = {(a, ms): f for a, ms, f in first}
    assert all(last_first[(a, ms)] == f for a, ms, f in again)
    assert len(again) <= len(book.accounts) * 4  # at most the marks of each last mark time
    assert {a: (s.realized_pnl, len(s.trades)) for a, s in book.accounts.items()} == states
    assert len(first) > 100


def test_a_newer_mark_does_not_drop_an_older_trade(events) -> None:
    """Trades and marks come from two topics: a mark read first must not drop the trade."""
    trade = next(e for e in events if e["kind"] == "trade")
    book = AccountBook()
    book.trade(trade)
    mark = {
        "kind": "position",
        "account_id": trade["account_id"],
        "symbol": trade["symbol"],
        "quantity": 1.0,
        "mark_price": trade["price"] * 1.01,
        "event_time_ms": trade["event_time_ms"] + 120_000,
    }
    assert book.mark(mark) is not None
    later = {**trade, "trade_id": "t-2", "event_time_ms": trade["event_time_ms"] + 60_000}
    assert book.trade(later) is None  # folded in, but no row under a time before the mark's
    assert book.trade(later) is None
    last = {**trade, "trade_id": "t-3", "event_time_ms": trade["event_time_ms"] + 180_000}
    feats = book.trade(last)
    assert feats is not None and feats["trade_count_1h"] == 3  # t-2 counted once


def test_one_row_per_account_and_instant_in_a_batch(events) -> None:
    """A trade and a mark of one account at the same millisecond give ONE row, the state after
    both: the online store keeps the first row of an instant and the offline log the last, so two
    rows would make them disagree. The row equals a direct fold of the same events."""
    from stream_jobs.account_job import AccountProcessor
    from stream_jobs.consumer import Event

    trade = next(e for e in events if e["kind"] == "trade")
    mark = next(
        e for e in events if e["kind"] == "position" and e["account_id"] == trade["account_id"]
    )
    same_instant = {**mark, "event_time_ms": trade["event_time_ms"], "symbol": trade["symbol"]}
    batch = [Event("trades", 0, 0, trade, 0), Event("positions", 0, 0, same_instant, 0)]
    proc = AccountProcessor()
    rows = proc.process(batch)[proc.view.name].rows()
    assert len(rows) == 1
    book = AccountBook()
    book.trade(trade)
    after_both = book.mark(same_instant)
    assert after_both is not None
    _account, _ms, got = rows[0]
    for name in ("trade_count_1h", "notional_1d", "net_exposure", "realized_pnl", "concentration"):
        assert got[name] == pytest.approx(after_both[name]), name


def test_an_instant_already_emitted_by_an_earlier_batch_gets_no_second_row(events) -> None:
    """The same instant split over two batches: the second batch folds its event in without a
    row (the stores would keep different rows of one instant); the next row carries it."""
    from stream_jobs.account_job import AccountProcessor
    from stream_jobs.consumer import Event

    trade = next(e for e in events if e["kind"] == "trade")
    mark = next(
        e for e in events if e["kind"] == "position" and e["account_id"] == trade["account_id"]
    )
    same_instant = {**mark, "event_time_ms": trade["event_time_ms"], "symbol": trade["symbol"]}
    later = {**same_instant, "event_time_ms": trade["event_time_ms"] + 60_000}
    proc = AccountProcessor()
    view = proc.view.name
    first = proc.process([Event("trades", 0, 0, trade, 0)])[view].rows()
    second = proc.process([Event("positions", 0, 0, same_instant, 0)])[view].rows()
    third = proc.process([Event("positions", 0, 1, later, 0)])[view].rows()
    assert len(first) == 1 and second == [] and len(third) == 1
    book = AccountBook()  # a direct fold of the same three events
    book.trade(trade)
    book.mark(same_instant)
    expected = book.mark(later)
    for name in ("notional_1d", "net_exposure", "realized_pnl", "concentration"):
        assert third[0][2][name] == pytest.approx(expected[name]), name
