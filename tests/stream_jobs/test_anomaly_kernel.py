"""The array kernel (`AnomalyScorer`) against River itself, on real bars.

Oracle: River's own `MinMaxScaler | HalfSpaceTrees` pipeline and `ADWIN`, one per symbol, run bar
by bar with score-then-learn (written out here from River's API, not through the scorer's code).
Every output column must be equal (the score bit for bit): in micro-batches of 1, 7 and all at
once, several symbols interleaved, SPY with ~19 windows (so the window pivots happen many times),
across a snapshot -> restore mid-stream, and on named edge cases (a symbol's first bar, a
constant price so the scaler's min == max, bars with zero volume).

ADWIN watches the anomaly score (in [0, 1]). Fed the raw log returns, as it was until 2026-12-02,
it detected no drift on any real series in shared/data (its bound is for values in [0, 1]): the
week test below asserts that drift now fires for every symbol, so the drift columns compared
here are not constant.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream_jobs.anomaly import SCORE_COLUMNS, AnomalyConfig, AnomalyScorer, AnomalyStateMismatch
from stream_jobs.replay import load_intraday_bars


def river_scores(bars: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """River's pipeline per symbol, bar by bar: the oracle."""
    from river import anomaly, drift, preprocessing

    state: dict[str, list] = {}
    rows = []
    for symbol, close, high, low, volume in bars[
        ["symbol", "close", "high", "low", "volume"]
    ].itertuples(index=False):
        if symbol not in state:
            model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
                n_trees=config.n_trees,
                height=config.height,
                window_size=config.window_size,
                seed=config.seed,
            )
            state[symbol] = [model, drift.ADWIN(delta=config.adwin_delta), None, 0, 0]
        st = state[symbol]
        model, adwin, prev, seen, drifts = st
        ret = math.log(close / prev) if prev else 0.0
        x = {"ret": ret, "log_volume": math.log1p(volume), "range": (high - low) / close}
        score = float(model.score_one(x))
        model.learn_one(x)
        adwin.update(score)
        flag = int(adwin.drift_detected)
        st[2], st[3], st[4] = close, seen + 1, drifts + flag
        warm = int(st[3] > config.window_size)
        rows.append((ret, score, int(warm and score >= config.threshold), flag, st[4], warm))
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def kernel_scores(scorer: AnomalyScorer, bars: pd.DataFrame, batch: int | None) -> pd.DataFrame:
    step = batch or max(len(bars), 1)
    parts = []
    for start in range(0, len(bars), step):
        b = bars.iloc[start : start + step]
        out = scorer.score_arrays(
            b["symbol"].to_numpy(),
            b["close"].to_numpy(),
            b["high"].to_numpy(),
            b["low"].to_numpy(),
            b["volume"].to_numpy(),
        )
        parts.append(pd.DataFrame(out))
    return pd.concat(parts, ignore_index=True)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want)
    for col in SCORE_COLUMNS:
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)


@pytest.fixture(scope="module")
def week(data_dir: Path) -> pd.DataFrame:
    """The replay week: SPY/AIG/BAC/IBM minute bars interleaved in event-time order."""
    return load_intraday_bars(data_dir)


@pytest.fixture(scope="module")
def week_river(week: pd.DataFrame) -> pd.DataFrame:
    return river_scores(week, AnomalyConfig())


def test_week_has_pivots_and_anomalies(week: pd.DataFrame, week_river: pd.DataFrame) -> None:
    """The data exercises what is compared: SPY > 2 windows, warm bars, anomalies flagged, a
    drift for every symbol."""
    assert (week["symbol"] == "SPY").sum() > 2 * AnomalyConfig().window_size
    assert week["symbol"].nunique() == 4
    assert week_river["anomaly_warm"].sum() > 0
    assert week_river["is_anomaly"].sum() > 0
    drifts = week_river.groupby(week["symbol"].to_numpy())["drift_flag"].sum()
    assert (drifts > 0).all() and len(drifts) == 4, drifts  # the drift columns are not constant


@pytest.mark.parametrize("batch", [1, 7, None], ids=["batch1", "batch7", "all"])
def test_kernel_equals_river(week: pd.DataFrame, week_river: pd.DataFrame, batch) -> None:  # noqa: ANN001
    scorer = AnomalyScorer(capacity=1)  # grows while symbols arrive
    assert_same(kernel_scores(scorer, week, batch), week_river)


def test_update_one_bar_equals_river(week: pd.DataFrame, week_river: pd.DataFrame) -> None:
    scorer = AnomalyScorer()
    head = week.head(1200)
    got = pd.DataFrame([scorer.update(r) for r in head.to_dict("records")])
    assert_same(got, week_river.head(1200))


@pytest.mark.parametrize("cut", [1, 999, 5003])
def test_snapshot_restore_continues_like_river(
    week: pd.DataFrame, week_river: pd.DataFrame, cut: int
) -> None:
    """Snapshot mid-stream (pickled like a checkpoint), restore into a new scorer, continue."""
    first = AnomalyScorer()
    head = kernel_scores(first, week.iloc[:cut], 500)
    blob = pickle.dumps(first.snapshot(sorted(first.slot_of)), protocol=pickle.HIGHEST_PROTOCOL)
    second = AnomalyScorer()
    second.update(week.iloc[-1].to_dict())  # a symbol it already holds is replaced by the restore
    second.restore(pickle.loads(blob))
    tail = kernel_scores(second, week.iloc[cut:], 500)
    assert_same(pd.concat([head, tail], ignore_index=True), week_river)


def test_snapshot_of_some_symbols_only(week: pd.DataFrame, week_river: pd.DataFrame) -> None:
    """A partition's snapshot carries its symbols only; the others start fresh after restore."""
    cut = 4000
    first = AnomalyScorer()
    kernel_scores(first, week.iloc[:cut], None)
    second = AnomalyScorer()
    second.restore(first.snapshot(["SPY", "IBM", "NOT_THERE"]))
    assert sorted(second.slot_of) == ["IBM", "SPY"]
    tail = week.iloc[cut:]
    got = kernel_scores(second, tail, None)
    mine = tail["symbol"].isin(["SPY", "IBM"]).to_numpy()
    assert_same(
        got[mine].reset_index(drop=True), week_river.iloc[cut:][mine].reset_index(drop=True)
    )
    fresh = river_scores(tail[~mine], AnomalyConfig())
    assert_same(got[~mine].reset_index(drop=True), fresh)


def test_forgotten_symbol_restarts_like_a_new_river_model(week: pd.DataFrame) -> None:
    scorer = AnomalyScorer()
    kernel_scores(scorer, week.iloc[:3000], None)
    scorer.forget("SPY")
    scorer.forget("AIG")
    tail = week.iloc[3000:6000]
    assert_same(kernel_scores(scorer, tail, 100), _continue_without(week, tail, {"SPY", "AIG"}))


def _continue_without(week: pd.DataFrame, tail: pd.DataFrame, forgotten: set[str]) -> pd.DataFrame:
    """River over the first 3000 bars minus the forgotten symbols, then the tail."""
    head = week.iloc[:3000]
    kept = head[~head["symbol"].isin(forgotten)]
    both = river_scores(pd.concat([kept, tail], ignore_index=True), AnomalyConfig())
    return both.iloc[len(kept) :].reset_index(drop=True)


def test_first_bar_of_a_symbol(week: pd.DataFrame) -> None:
    """First bar: no previous close (return 0), HST in its first window (score 0), not warm."""
    bar = week.iloc[0]
    got = kernel_scores(AnomalyScorer(), week.iloc[:1], None)
    assert_same(got, river_scores(week.iloc[:1], AnomalyConfig()))
    assert (got.loc[0, "bar_log_return"], got.loc[0, "anomaly_score"]) == (0.0, 0.0)
    assert got.loc[0, "anomaly_warm"] == 0 and bar["close"] > 0


def test_constant_price_scaler_min_equals_max(week: pd.DataFrame) -> None:
    """One real bar repeated past two windows: every feature has min == max (scaled to 0.0), so
    after warm-up the same path is scored; then real bars follow."""
    bar = week[week["symbol"] == "IBM"].iloc[[0]]
    flat = pd.concat([bar] * 600, ignore_index=True)
    follow = week[week["symbol"] == "IBM"].iloc[1:300]
    bars = pd.concat([flat, follow], ignore_index=True)
    want = river_scores(bars, AnomalyConfig())
    assert want["anomaly_warm"].iloc[300] == 1 and want["bar_log_return"].iloc[1:600].eq(0).all()
    for batch in (1, 7, None):
        assert_same(kernel_scores(AnomalyScorer(), bars, batch), want)


def test_zero_volume_bars(data_dir: Path) -> None:
    """Real daily bars with volume 0 (LEAN daily file: 26 such rows) score like River."""
    daily = pd.read_csv(data_dir / "daily" / "lean_equity_daily_bars.csv.gz")
    zero = daily.loc[daily["volume"] == 0, "symbol"].unique()
    assert len(zero)
    bars = daily[daily["symbol"].isin(zero[:3])].sort_values(["date", "symbol"], kind="stable")
    bars = bars.reset_index(drop=True).astype({"volume": "float64"})
    assert (bars["volume"] == 0).any() and len(bars) > 2 * AnomalyConfig().window_size
    want = river_scores(bars, AnomalyConfig())
    assert_same(kernel_scores(AnomalyScorer(), bars, 7), want)


def test_other_config_equals_river_and_refuses_foreign_state(week: pd.DataFrame) -> None:
    """A small config (window 40, 3 trees of height 4, other seed) also matches River; a snapshot
    of it is refused by a scorer of the default config."""
    config = AnomalyConfig(n_trees=3, height=4, window_size=40, seed=7, threshold=0.8)
    bars = week.head(2000)
    scorer = AnomalyScorer(config)
    assert_same(kernel_scores(scorer, bars, 7), river_scores(bars, config))
    with pytest.raises(AnomalyStateMismatch):
        AnomalyScorer().restore(scorer.snapshot(["SPY"]))


def test_layout_is_the_trees_river_builds_for_any_symbol(week: pd.DataFrame) -> None:
    """River's trees depend on the seed and feature names only: two River models that learned
    different symbols' first bars have the nodes the layout holds."""
    from river import anomaly, preprocessing

    layout = AnomalyConfig().layout()
    for symbol in ("SPY", "BAC"):
        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=10, height=8, window_size=250, seed=42
        )
        for r in week[week["symbol"] == symbol].head(3).itertuples(index=False):
            model.learn_one({"ret": 0.0, "log_volume": math.log1p(r.volume), "range": r.high})
        hst = model["HalfSpaceTrees"]
        for t, nodes in enumerate(hst._tree_nodes):  # noqa: SLF001
            branches = [(k, n) for k, n in enumerate(nodes) if hasattr(n, "feature")]
            assert len(nodes) == layout.n_nodes and len(branches) == 255
            for k, node in branches:
                assert ("log_volume", "range", "ret")[layout.feature[t, k]] == node.feature
                assert layout.threshold[t, k] == node.threshold


def test_unvalidated_bars_are_refused_before_any_state_change() -> None:
    scorer = AnomalyScorer()
    with pytest.raises(ValueError, match="validated"):
        scorer.score_arrays(["X"], np.array([0.0]), np.ones(1), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="validated"):
        scorer.score_arrays(["X"], np.ones(1), np.ones(1), np.ones(1), np.array([-1.0]))
    assert len(scorer) == 0
