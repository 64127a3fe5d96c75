"""`--engine dask`: the catalog partitioned by symbol on a real LocalCluster gives the same table."""

from __future__ import annotations

import pandas as pd
import pytest
from featstore_inputs import (
    load_bars,
    load_fx_rates,
    load_listings,
    load_macro,
    write_canonical_tables,
)

from finfeast.offline import open_tables
from transforms.build import build_feature_tables, compute_all_features
from transforms.dask_engine import dask_client, symbol_partitions


@pytest.fixture(scope="module")
def inputs(data_dir):
    bars = load_bars(data_dir)
    tables = {
        "macro": load_macro(data_dir),
        "fx_rates": load_fx_rates(),
        "listings": load_listings(data_dir),
    }
    return bars, tables


def test_partitions_cover_every_symbol_once_in_order_and_balanced(inputs) -> None:
    bars, _ = inputs
    groups = symbol_partitions(bars, 4)
    flat = [s for g in groups for s in g]
    assert flat == sorted(bars["symbol"].unique())
    rows = [int(bars["symbol"].isin(g).sum()) for g in groups]
    assert len(groups) == 4 and max(rows) < 2.5 * min(rows)
    many = symbol_partitions(bars, 100)  # never more groups than symbols, never an empty one
    assert len(many) <= len(flat) and all(many)
    assert [s for g in many for s in g] == flat


@pytest.mark.slow
def test_dask_results_are_identical_to_the_single_process_path(inputs) -> None:
    bars, tables = inputs
    local, _ = compute_all_features(bars, tables, engine="local")
    with dask_client(n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2  # a real multi-process cluster
        from transforms.context import prepare_context
        from transforms.dask_engine import compute_partitioned

        ctx = prepare_context(bars, tables["macro"], tables["fx_rates"], tables["listings"])
        bar_feats, ctx_feats = compute_partitioned(bars, ctx, client=client, n_partitions=5)
    assert len(bar_feats) == len(ctx_feats) == len(bars)
    distributed = pd.concat(
        [bar_feats, ctx_feats.drop(columns=["symbol", "event_timestamp"])], axis=1
    )
    distributed = distributed.astype(local.dtypes.to_dict())
    pd.testing.assert_frame_equal(distributed, local, check_exact=True)


@pytest.mark.slow
def test_build_with_dask_engine_writes_the_same_tables(settings_factory, data_dir) -> None:
    symbols = ("XOM", "CVX", "JPM")
    local_s = settings_factory("local", "dask_ref")
    dask_s = settings_factory("local", "dask_run")
    for s in (local_s, dask_s):
        write_canonical_tables(s, data_dir, symbols)
    build_feature_tables(local_s)
    summary = build_feature_tables(dask_s, engine="dask")
    assert summary.engine == "dask" and "features (dask)" in summary.seconds
    for table in ("features_daily", "labels_daily"):
        a = open_tables(local_s).read(table).drop(columns=["created_timestamp"])
        b = open_tables(dask_s).read(table).drop(columns=["created_timestamp"])
        pd.testing.assert_frame_equal(a, b, check_exact=True)
