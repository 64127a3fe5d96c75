"""Online state: the arrival-order lateness rule whatever the batch boundaries, and versioned
snapshots (restore, merge, pickle, refusal of other definitions). These compare the engine with
itself on real bars, so they are wiring/determinism tests; the values themselves are held to
independent oracles in test_talib_parity.py and test_corporate_actions.py.
"""

from __future__ import annotations

import itertools
import json
import pickle
import struct

import numpy as np
import pandas as pd
import pytest
from catalog_inputs import daily_bars
from lean_inputs import lean_actions, lean_bars

from transforms import OnlineFeatures, compute_features
from transforms.adjustments import ActionBook
from transforms.online import SnapshotError

BAR_COLS = ["symbol", "event_timestamp", "open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def history(data_dir) -> pd.DataFrame:
    bars = daily_bars(data_dir, ("AAPL", "F", "AMD"))
    return bars.sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)


def _messages(history: pd.DataFrame) -> pd.DataFrame:
    """A short real sequence (10 messages: 512 batch splits) in arrival order with a duplicate, late bars (older than what was
    already folded) and an out-of-order pair inside what may be one batch."""
    warm = history.iloc[:60]
    tail = history.iloc[60:69].reset_index(drop=True)  # 3 days x 3 symbols
    # tail rows: 0-2 = day 1 (AAPL, AMD, F), 3-5 = day 2, 6-8 = day 3
    order = [
        0,  # AAPL d1
        1,  # AMD d1
        0,  # AAPL d1 again: a duplicate (redelivery)
        3,  # AAPL d2
        7,  # AMD d3 arrives before AMD d2 ...
        4,  # ... so AMD d2 is late and dropped
        2,  # F d1
        5,  # F d2
        -1,  # a late bar from before the sequence (warm-up history)
        1,  # AMD d1 again, with another close: late
    ]
    seq = [warm.iloc[-1] if k < 0 else tail.iloc[k].copy() for k in order]
    seq[-1]["close"] *= 1.5
    return warm, pd.DataFrame(seq).reset_index(drop=True)


def _run(warm: bytes, seq: pd.DataFrame, cuts: tuple[int, ...]):
    online = OnlineFeatures(capacity=4)
    online.restore(warm)  # the warmed-up state (a snapshot: cheaper than refolding per split)
    emitted = []
    for lo, hi in zip((0, *cuts), (*cuts, len(seq)), strict=True):
        chunk = seq.iloc[lo:hi]
        folded = online.update_arrays(
            chunk["symbol"].to_numpy(),
            chunk["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64),
            *(chunk[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        )
        for r, row in zip(folded.rows, folded.floats, strict=True):
            emitted.append((lo + int(r), row.tobytes()))
    emitted.sort()
    return emitted, online.snapshot(sorted(online.symbols)), online.stale_bars


def test_late_and_duplicate_bars_are_deterministic_in_every_batch_split(history) -> None:
    warm, seq = _messages(history)
    n = len(seq)
    warmed = OnlineFeatures()
    warmed.update_many(warm)
    blob = warmed.snapshot()
    reference = _run(blob, seq, ())
    splits = 0
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            assert _run(blob, seq, cuts) == reference, cuts
            splits += 1
    assert splits == 2 ** (n - 1)
    # bar-by-bar `update` emits the same rows (and the rule is the one documented)
    one = OnlineFeatures()
    one.update_many(warm)
    emitted = [r for r, b in enumerate(seq.to_dict("records")) if one.update(b) is not None]
    assert emitted == [r for r, _ in reference[0]]
    last: dict[str, pd.Timestamp] = {
        s: warm[warm["symbol"] == s]["event_timestamp"].max() for s in warm["symbol"].unique()
    }
    expected = []
    for r, b in enumerate(seq.to_dict("records")):
        if b["event_timestamp"] > last[b["symbol"]]:
            expected.append(r)
            last[b["symbol"]] = b["event_timestamp"]
    assert emitted == expected
    assert reference[2] == n - len(expected) >= 4


def test_a_late_bar_in_a_batch_with_newer_ones_is_dropped(history) -> None:
    """The issue-11 case: a late bar sharing a batch with newer bars is not folded in (it was
    sorted into place before)."""
    aapl = history[history["symbol"] == "AAPL"].reset_index(drop=True)
    newer_first = pd.concat([aapl.iloc[[1, 0, 2]]])
    online = OnlineFeatures()
    out = online.update_many(newer_first)
    assert list(out["event_timestamp"]) == list(aapl["event_timestamp"].iloc[[1, 2]])
    assert online.stale_bars == 1


@pytest.fixture(scope="module")
def lean(data_dir) -> tuple[pd.DataFrame, ActionBook]:
    bars = lean_bars(data_dir, ("AAPL", "SPY", "AIG"))
    bars = bars[(bars["date"] >= "2013-06-01") & (bars["date"] <= "2014-12-31")]
    book = ActionBook.from_frame(lean_actions(data_dir, bars))
    ordered = bars.sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)
    return ordered[BAR_COLS], book


def test_restore_equals_uninterrupted_across_a_split(lean) -> None:
    """Snapshot before AAPL's 2014-06-09 split, restore into a new process, continue: the same
    rows as the uninterrupted batch (the pending action is found again from the last bar)."""
    bars, book = lean
    batch = compute_features(bars, actions=book)
    cut = int(np.searchsorted(bars["event_timestamp"], pd.Timestamp("2014-06-01", tz="UTC")))
    first = OnlineFeatures(actions=book)
    head = first.update_many(bars.iloc[:cut])
    blob = first.snapshot()
    second = OnlineFeatures(actions=book)
    assert sorted(second.restore(blob)) == ["AAPL", "AIG", "SPY"]
    tail = second.update_many(bars.iloc[cut:])
    got = pd.concat([head, tail]).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, batch, check_dtype=False, rtol=1e-12)
    # pickling goes through the same bytes and keeps the book
    clone = pickle.loads(pickle.dumps(first))
    assert clone.snapshot() == blob and len(clone.actions) == len(book)


def test_restore_merges_symbols_and_refuses_other_definitions(lean) -> None:
    bars, book = lean
    a = OnlineFeatures(actions=book)
    a.update_many(bars)
    b = OnlineFeatures(actions=book)
    b.update_many(bars[bars["symbol"] == "SPY"].iloc[:10])
    assert b.restore(a.snapshot(["AAPL"])) == ["AAPL"]
    assert sorted(b.symbols) == ["AAPL", "SPY"]
    assert b.snapshot(["AAPL"]) == a.snapshot(["AAPL"])
    assert b.snapshot(["SPY"]) != a.snapshot(["SPY"])  # kept its own SPY state

    blob = a.snapshot()
    size = struct.unpack("<I", blob[4:8])[0]
    header = json.loads(blob[8 : 8 + size])
    header["families"]["trend"] = "0" * 12
    forged = json.dumps(header).encode()
    tampered = blob[:4] + struct.pack("<I", len(forged)) + forged + blob[8 + size :]
    with pytest.raises(SnapshotError, match="trend"):
        OnlineFeatures().restore(tampered)
    header["format"] = 99
    forged = json.dumps(header).encode()
    with pytest.raises(SnapshotError, match="format"):
        OnlineFeatures().restore(blob[:4] + struct.pack("<I", len(forged)) + forged)
    with pytest.raises(SnapshotError, match="magic"):
        OnlineFeatures().restore(b"not a snapshot")
    with pytest.raises(SnapshotError, match="truncated"):
        OnlineFeatures().restore(blob[:-3])
    with pytest.raises(KeyError):
        a.snapshot(["NOPE"])
