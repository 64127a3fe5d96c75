"""Stock `get_historical_features` through the offline plugin equals Feast's DuckDB store.

The real-price repo (50 features, two views on one Parquet source, TTL 10 days) read through two
FeatureStores on the same registry: Feast's `duckdb` offline store and finfeast's plugin. Entity
rows include the edges that decide point-in-time correctness: exactly at a feature's event time
(included), one second before it (previous row), just inside and just outside the 10-day TTL
(value / null), before a symbol's first bar (null) and an unknown symbol (null).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.price_repo import SERVICE

FEATURES = [f"ret_{k}" for k in range(1, 26)] + [f"range_{k}" for k in range(1, 26)]
PLUGIN = "finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore"


@pytest.fixture(scope="module")
def duck_repo(tmp_path_factory: pytest.TempPathFactory, data_dir):
    from bench.price_repo import build_price_repo

    return build_price_repo(
        tmp_path_factory.mktemp("asof_repo"),
        data_dir,
        project="asof_test",
        online="sqlite",
        offline="duckdb",
        symbols=["AAPL", "APTV", "IBM", "BHF"],
        materialize=False,
    )


def plugin_store(repo):
    """The repo's FeatureStore with the offline plugin instead of Feast's DuckDB store."""
    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    raw = yaml.safe_load(repo.yaml.read_text())
    raw["offline_store"] = {"type": PLUGIN}
    return FeatureStore(config=RepoConfig(**raw, repo_path=repo.path))


def _entities(source: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    aapl = (
        source[source["symbol"] == "AAPL"]["event_timestamp"].sort_values().reset_index(drop=True)
    )
    aptv_first = source[source["symbol"] == "APTV"]["event_timestamp"].min()
    last = aapl.iloc[-1]
    edges = [
        ("AAPL", aapl.iloc[100]),  # exactly at an event time
        ("AAPL", aapl.iloc[100] - pd.Timedelta(seconds=1)),  # the previous bar
        ("AAPL", last + pd.Timedelta(days=10)),  # TTL boundary: still included
        ("AAPL", last + pd.Timedelta(days=10, seconds=1)),  # just outside the TTL
        ("APTV", aptv_first - pd.Timedelta(days=1)),  # before the first bar
        ("ZZZZ", last),  # unknown symbol
    ]
    lo, hi = source["event_timestamp"].min().value, source["event_timestamp"].max().value
    random = pd.DataFrame(
        {
            "symbol": rng.choice(["AAPL", "APTV", "IBM", "BHF"], 2000),
            "event_timestamp": pd.to_datetime(rng.integers(lo, hi, 2000), utc=True).floor("s"),
        }
    )
    frame = pd.concat([pd.DataFrame(edges, columns=["symbol", "event_timestamp"]), random])
    frame["row"] = range(len(frame))
    return frame.reset_index(drop=True)


def test_plugin_equals_feast_duckdb(duck_repo) -> None:
    source = pd.read_parquet(duck_repo.path / "px_features.parquet")
    entities = _entities(source)
    out = {}
    for name, store in (("feast", duck_repo.store()), ("plugin", plugin_store(duck_repo))):
        job = store.get_historical_features(
            entity_df=entities, features=store.get_feature_service(SERVICE)
        )
        out[name] = job.to_df().sort_values("row").reset_index(drop=True)
    lean, feast = out["plugin"], out["feast"]
    assert list(lean["row"]) == list(entities["row"])
    assert list(lean["symbol"]) == list(feast["symbol"])
    a, b = lean[FEATURES].to_numpy(float), feast[FEATURES].to_numpy(float)
    assert (np.isnan(a) == np.isnan(b)).all()
    assert np.array_equal(a[~np.isnan(a)], b[~np.isnan(b)])
    # The edges behave as designed (independently of Feast).
    assert not np.isnan(a[0]).all() and not np.isnan(a[1]).all() and (a[0] != a[1]).any()
    assert not np.isnan(a[2, 0]) and np.isnan(a[3]).all()
    assert np.isnan(a[4]).all() and np.isnan(a[5]).all()


def test_full_feature_names_and_missing_join_key(duck_repo) -> None:
    store = plugin_store(duck_repo)
    service = store.get_feature_service(SERVICE)
    entities = pd.DataFrame(
        {"symbol": ["IBM"], "event_timestamp": [pd.Timestamp("2017-06-01", tz="UTC")]}
    )
    out = store.get_historical_features(
        entity_df=entities, features=service, full_feature_names=True
    ).to_df()
    assert "px_returns__ret_1" in out.columns and "px_ranges__range_25" in out.columns
    assert "ret_1" not in out.columns
    with pytest.raises(Exception, match="symbol"):
        store.get_historical_features(
            entity_df=entities.rename(columns={"symbol": "s"}), features=service
        ).to_df()
