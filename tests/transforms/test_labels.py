"""Labels: forward returns on real bars, their availability times, and nothing invented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from featstore_inputs import load_bars

from finfeast.errors import FinfeastError
from transforms.labels import HORIZONS, available_at, compute_labels, direction_label, return_label


@pytest.fixture(scope="module")
def bars(data_dir) -> pd.DataFrame:
    return load_bars(data_dir, ("AAPL", "XOM", "APTV"))


@pytest.fixture(scope="module")
def labels(bars) -> pd.DataFrame:
    # shuffled input: the result must not depend on row order
    return compute_labels(bars.sample(frac=1.0, random_state=7))


def test_forward_returns_match_an_independent_per_symbol_shift(bars, labels) -> None:
    ordered = bars.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)
    assert list(labels["symbol"]) == list(ordered["symbol"])
    for h in HORIZONS:
        future = ordered.groupby("symbol")["close"].shift(-h)
        expected = future / ordered["close"] - 1.0
        np.testing.assert_allclose(labels[return_label(h)], expected, rtol=1e-12, equal_nan=True)
        direction = labels[direction_label(h)]
        known = labels[return_label(h)].notna()
        assert direction[~known].isna().all()
        assert ((direction[known] == 1.0) == (labels.loc[known, return_label(h)] > 0)).all()


def test_each_label_is_available_exactly_h_bars_later(bars, labels) -> None:
    for h in HORIZONS:
        avail = labels[available_at(h)]
        known = labels[return_label(h)].notna()
        assert (avail[known] > labels.loc[known, "event_timestamp"]).all()
        expected = labels.groupby("symbol")["event_timestamp"].shift(-h)
        pd.testing.assert_series_equal(avail[known], expected[known], check_names=False)
        # the last h bars of every symbol have no label yet: null, never 0
        tail = labels.groupby("symbol").tail(h)
        assert tail[return_label(h)].isna().all()
        assert tail[available_at(h)].isna().all()


def test_short_history_symbol_gets_labels_only_where_the_future_exists(labels) -> None:
    aptv = labels[labels["symbol"] == "APTV"]
    assert len(aptv) == 44  # a late listing in the real file
    assert aptv[return_label(20)].notna().sum() == 44 - 20


def test_non_positive_price_gives_no_return(bars) -> None:
    broken = bars[bars["symbol"] == "XOM"].head(30).copy()
    broken.iloc[10, broken.columns.get_loc("close")] = 0.0
    out = compute_labels(broken, horizons=(1,))
    assert np.isnan(out.loc[10, "fwd_ret_1"])  # from a zero price
    assert np.isnan(out.loc[9, "fwd_ret_1"])  # to a zero price (inf is not a return)
    assert out["fwd_ret_1"].notna().sum() == 30 - 1 - 2


def test_bad_input_is_a_clear_error(bars) -> None:
    with pytest.raises(FinfeastError, match="close"):
        compute_labels(bars.drop(columns=["close"]))
    with pytest.raises(FinfeastError, match="duplicate"):
        compute_labels(pd.concat([bars.head(5), bars.head(1)]))
    with pytest.raises(FinfeastError, match="horizons"):
        compute_labels(bars, horizons=(0,))
