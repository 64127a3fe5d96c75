"""Batch/online parity: bars fed one at a time (or in micro-batches) to `OnlineFeatures` reproduce
`compute_features` for every feature, on real data with gaps and from the very first bar.

A gap is a missing bar: the row is simply absent. Features count bars, not calendar days, so after
a gap `ret_1` compares with the last bar that exists and a 20-bar window spans 20 existing bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from catalog_inputs import daily_bars

from transforms import InvalidBarsError, OnlineFeatures, OnlineFeaturesBatch, compute_features
from transforms.catalog import bar_features

RTOL = 1e-9
NAMES = [f.name for f in bar_features()]
PARITY_SYMBOLS = ("AAPL", "GOOGL", "F", "LNT", "APTV", "AMD")


def with_gaps(bars: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """Drop 5% of bars at random plus a 30-bar hole in one symbol (a trading halt)."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(bars)) > 0.05
    aapl = np.flatnonzero(bars["symbol"].to_numpy() == "AAPL")
    keep[aapl[300:330]] = False
    return bars[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def gapped(data_dir) -> pd.DataFrame:
    return with_gaps(daily_bars(data_dir, PARITY_SYMBOLS))


@pytest.fixture(scope="module")
def batch(gapped) -> pd.DataFrame:
    return compute_features(gapped)


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same keys, same null pattern, values equal to RTOL, for every bar feature."""
    assert list(got["symbol"]) == list(expected["symbol"])
    assert (got["event_timestamp"].to_numpy() == expected["event_timestamp"].to_numpy()).all()
    for name in NAMES:
        a = got[name].to_numpy(dtype=float)
        b = expected[name].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}: null pattern")
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0, err_msg=name)


def interleaved(chunk: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`chunk` with its symbols interleaved at random, each symbol's bars still in time order."""
    labels = np.random.default_rng(seed).permutation(chunk["symbol"].to_numpy())
    ordered = chunk.sort_values(["symbol", "event_timestamp"], kind="stable")
    slots = np.argsort(labels, kind="stable")  # the positions each symbol gets, in order
    return ordered.iloc[np.argsort(slots)].reset_index(drop=True)


def stream_in_time_order(online: OnlineFeatures, bars: pd.DataFrame) -> pd.DataFrame:
    """Interleave symbols as a live feed would: every bar in event-time order, one call each."""
    rows = []
    for bar in bars.sort_values(["event_timestamp", "symbol"]).to_dict("records"):
        features = online.update(bar)
        assert features is not None
        rows.append(
            {"symbol": bar["symbol"], "event_timestamp": bar["event_timestamp"], **features}
        )
    return pd.DataFrame(rows).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def test_single_bar_updates_reproduce_batch_with_gaps_and_first_bars(gapped, batch) -> None:
    online = OnlineFeatures(capacity=2)  # forces the state array to grow while streaming
    streamed = stream_in_time_order(online, gapped)
    assert_same_features(streamed, batch)
    assert sorted(online.symbols) == sorted(PARITY_SYMBOLS)
    assert online.stale_bars == 0
    # the comparison covered warm-ups (first bars) and fully warmed rows
    first = streamed.groupby("symbol").head(1)
    assert first["sma_5"].isna().all() and first["obv"].notna().all()
    assert streamed["sma_200"].notna().sum() > 3000


def test_gap_means_absent_bars_counted_in_bars_not_days(gapped, batch) -> None:
    aapl = gapped[gapped["symbol"] == "AAPL"].sort_values("event_timestamp")
    feats = batch[batch["symbol"] == "AAPL"].reset_index(drop=True)
    close = aapl["close"].to_numpy()
    days = aapl["event_timestamp"].diff().dt.days.to_numpy()
    after_hole = int(np.argmax(days > 30))  # the bar right after the 30-bar hole
    assert after_hole > 0
    assert feats.loc[after_hole, "ret_1"] == pytest.approx(
        close[after_hole] / close[after_hole - 1] - 1, rel=1e-12
    )
    window = close[after_hole - 19 : after_hole + 1]
    assert feats.loc[after_hole, "sma_20"] == pytest.approx(window.mean(), rel=1e-12)


def test_micro_batches_reproduce_batch(gapped, batch) -> None:
    online = OnlineFeaturesBatch()
    ordered = gapped.sort_values("event_timestamp").reset_index(drop=True)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, len(ordered)), size=40, replace=False))
    parts = []
    for lo, hi in zip([0, *cuts], [*cuts, len(ordered)], strict=True):
        chunk = ordered.iloc[lo:hi]
        # within a micro-batch the interleaving of symbols does not matter (each symbol's bars
        # keep their arrival = time order; a bar out of time order is late: test_lateness.py)
        parts.append(online.update_many(interleaved(chunk, seed=lo)))
    streamed = pd.concat(parts).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    assert_same_features(streamed, batch)
    assert online.stale_bars == 0


def test_array_micro_batches_reproduce_batch(gapped, batch) -> None:
    """The pandas-free path: parallel arrays in, folded rows and float features out."""
    from transforms.families.calendar import calendar_row

    online = OnlineFeatures()
    ordered = gapped.sort_values("event_timestamp").reset_index(drop=True)
    frames = []
    for lo in range(0, len(ordered), 700):
        chunk = ordered.iloc[lo : lo + 700]
        folded = online.update_arrays(
            chunk["symbol"].to_numpy(),
            chunk["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64),
            *(chunk[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        )
        part = pd.DataFrame(folded.floats, columns=list(folded.names))
        part.insert(0, "symbol", chunk["symbol"].to_numpy()[folded.rows])
        part.insert(1, "event_timestamp", chunk["event_timestamp"].to_numpy()[folded.rows])
        cal = pd.DataFrame([calendar_row(int(d)) for d in folded.days])
        frames.append(pd.concat([part, cal], axis=1))
    streamed = pd.concat(frames).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    assert_same_features(streamed, batch)
    with pytest.raises(InvalidBarsError):
        online.update_arrays(
            np.array(["F"]),
            np.array([2**62]),
            *(np.array([x]) for x in (1.0, 1.0, np.nan, 1.0, 1.0)),
        )


def test_single_and_micro_batch_paths_share_state(gapped, batch) -> None:
    """A consumer may switch between paths: half by micro-batch, then bar by bar."""
    ordered = gapped.sort_values("event_timestamp").reset_index(drop=True)
    half = len(ordered) // 2
    online = OnlineFeatures()
    first = online.update_many(ordered.iloc[:half])
    rest = [
        {"symbol": b["symbol"], "event_timestamp": b["event_timestamp"], **online.update(b)}
        for b in ordered.iloc[half:].to_dict("records")
    ]
    streamed = pd.concat([first, pd.DataFrame(rest)])
    streamed = streamed.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    assert_same_features(streamed, batch)


def test_replayed_and_late_bars_are_rejected_without_touching_state(gapped, batch) -> None:
    ordered = gapped.sort_values("event_timestamp").reset_index(drop=True)
    online = OnlineFeatures()
    rows = []
    previous: dict[str, dict] = {}
    rejected = 0
    for k, bar in enumerate(ordered.to_dict("records")):
        features = online.update(bar)
        rows.append(
            {"symbol": bar["symbol"], "event_timestamp": bar["event_timestamp"], **features}
        )
        if k % 97 == 0 and bar["symbol"] in previous:
            assert online.update(bar) is None  # exact replay (at-least-once redelivery)
            late = dict(previous[bar["symbol"]], close=bar["close"] * 3)
            assert online.update(late) is None  # an older bar arriving late, with other values
            rejected += 2
        previous[bar["symbol"]] = bar
    assert online.stale_bars == rejected > 20
    streamed = pd.DataFrame(rows).sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    assert_same_features(streamed, batch)  # the rejected bars changed nothing


def test_micro_batch_drops_repeats_within_and_across_batches(gapped) -> None:
    ordered = gapped.sort_values("event_timestamp").reset_index(drop=True)
    online = OnlineFeatures()
    first = online.update_many(ordered.iloc[:500])
    again = pd.concat([ordered.iloc[400:600], ordered.iloc[550:600]])  # 100 old + 50 twice
    second = online.update_many(again)
    assert len(first) == 500
    assert len(second) == 100
    assert online.stale_bars == 150


def test_invalid_bar_raises_and_leaves_state_untouched(gapped, batch) -> None:
    ordered = gapped[gapped["symbol"] == "F"].sort_values("event_timestamp")
    records = ordered.to_dict("records")
    online = OnlineFeatures()
    for bar in records[:50]:
        online.update(bar)
    for bad in (
        dict(records[50], close=float("nan")),
        dict(records[50], low=-1.0),
        dict(records[50], volume=-5.0),
        {k: v for k, v in records[50].items() if k != "high"},
        {k: v for k, v in records[50].items() if k != "symbol"},
        dict(records[50], symbol=None),
        dict(records[50], event_timestamp=None),
        dict(records[50], event_timestamp="not a time"),
    ):
        with pytest.raises(InvalidBarsError):
            online.update(bad)
    got = online.update(records[50])
    expected = batch[batch["symbol"] == "F"].iloc[50]
    for name in NAMES:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, err_msg=name)


def test_state_size_is_fixed_per_symbol(gapped) -> None:
    from transforms.engine import STATE_SLOTS

    online = OnlineFeatures()
    online.update_many(gapped)
    sizes = {online.state_bytes(s) for s in PARITY_SYMBOLS}
    assert sizes == {STATE_SLOTS * 8 + 8}
    assert 1_000 < STATE_SLOTS * 8 < 20_000  # rings of <= 253 values, not whole histories
    with pytest.raises(KeyError):
        online.state_bytes("NOPE")
