"""Contract tests of finfeast's offline store plugin against Feast's own DuckDB store and pandas.

One small repo of real data, applied to two registries: one configured with Feast's `duckdb`
offline store, one with `finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore`.
- `spy_ticks`: real SPY trade ticks of 2013-10-07 (millisecond stamps, many trades in the same
  millisecond: the tie is broken by `created_timestamp` = arrival order, as Feast defines), TTL 2 s.
- `px_returns` / `px_ranges`: trailing returns and ranges of real daily bars (AAPL, IBM and APTV,
  which starts later: entity rows before its history), TTL 10 days; a feature service takes a
  subset of one and the whole other; an on-demand view divides two of them.
- `stream_log`: a push-fed view whose source is a directory of Parquet parts; `empty_log`: one
  whose directory does not exist yet.
Independent oracle: `pandas.merge_asof` per view on the raw frames (dedupe of ties by created
timestamp, tolerance = TTL). The plugin must equal both Feast and the oracle.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PLUGIN = "finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore"
DAILY = ["AAPL", "IBM", "APTV"]
RET = ["ret_1", "ret_2", "ret_5"]
RNG = ["range_1", "range_3"]
TICK_TTL = pd.Timedelta(seconds=2)
DAILY_TTL = pd.Timedelta(days=10)


def _ticks(data_dir: Path, n: int = 6000) -> pd.DataFrame:
    raw = pd.read_csv(
        data_dir / "intraday" / "lean_spy_trade_ticks_20131007.csv.gz",
        nrows=n,
        dtype={"sale_condition": str},
    )
    ts = pd.to_datetime(raw["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    seq = raw.groupby(ts).cumcount()  # arrival order within one millisecond
    return pd.DataFrame(
        {
            "symbol": raw["symbol"],
            "event_timestamp": ts,
            "created_timestamp": ts + pd.to_timedelta(seq, unit="us"),
            "price": raw["price"].astype("float64"),
            "size": raw["size"].astype("int64"),
        }
    )


def _daily(data_dir: Path) -> pd.DataFrame:
    from bench.price_repo import load_price_features

    frame = load_price_features(data_dir, DAILY)
    return frame[["symbol", "event_timestamp", "created_timestamp", *RET, *RNG]]


def _definitions(root: Path):
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64, Int64

    symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING)

    def src(name: str, path: Path) -> FileSource:
        return FileSource(
            name=name,
            path=str(path),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
        )

    daily = src("daily", root / "daily.parquet")
    returns = FeatureView(
        name="px_returns",
        entities=[symbol],
        ttl=timedelta(days=10),
        schema=[Field(name=f, dtype=Float64) for f in RET],
        source=daily,
    )
    ranges = FeatureView(
        name="px_ranges",
        entities=[symbol],
        ttl=timedelta(days=10),
        schema=[Field(name=f, dtype=Float64) for f in RNG],
        source=daily,
    )
    ticks = FeatureView(
        name="spy_ticks",
        entities=[symbol],
        ttl=timedelta(seconds=2),
        schema=[Field(name="price", dtype=Float64), Field(name="size", dtype=Int64)],
        source=src("ticks", root / "ticks.parquet"),
    )
    stream = FeatureView(
        name="stream_log",
        entities=[symbol],
        ttl=timedelta(days=10),
        schema=[Field(name="ret_1", dtype=Float64)],
        source=PushSource(name="stream_push", batch_source=src("log", root / "stream_log")),
    )
    empty = FeatureView(
        name="empty_log",
        entities=[symbol],
        ttl=timedelta(days=10),
        schema=[Field(name="ret_1", dtype=Float64)],
        source=PushSource(name="empty_push", batch_source=src("nolog", root / "no_log_yet")),
    )

    @on_demand_feature_view(
        sources=[returns[["ret_1"]], ranges[["range_1"]]],
        schema=[Field(name="ret_over_range", dtype=Float64)],
        mode="pandas",
    )
    def ret_over_range(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"ret_over_range": inputs["ret_1"] / inputs["range_1"]})

    service = FeatureService(name="svc", features=[returns[["ret_1", "ret_5"]], ranges, ticks])
    return [symbol, returns, ranges, ticks, stream, empty, ret_over_range, service]


def _store(root: Path, name: str, offline: str):
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    config = RepoConfig(
        project=f"offline_contract_{name}",
        provider="local",
        registry={"registry_type": "file", "path": str(root / f"{name}_registry.db")},
        online_store={"type": "sqlite", "path": str(root / f"{name}_online.db")},
        offline_store={"type": offline},
        entity_key_serialization_version=3,
        materialization={"pull_latest_features": True},
        repo_path=root,
    )
    return FeatureStore(config=config)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    root = tmp_path_factory.mktemp("offline_contract")
    ticks, daily = _ticks(data_dir), _daily(data_dir)
    ticks.to_parquet(root / "ticks.parquet")
    daily.to_parquet(root / "daily.parquet")
    # The stream log: two parts, the second restating one row (same event time, later created).
    log = daily[daily["symbol"] == "IBM"][
        ["symbol", "event_timestamp", "created_timestamp", "ret_1"]
    ]
    (root / "stream_log").mkdir()
    log.iloc[:600].to_parquet(root / "stream_log" / "part-0001.parquet", index=False)
    restated = log.iloc[[599]].assign(
        created_timestamp=log["created_timestamp"].iloc[599] + pd.Timedelta(hours=1),
        ret_1=log["ret_1"].iloc[599] + 1.0,
    )
    pd.concat([log.iloc[600:], restated]).to_parquet(
        root / "stream_log" / "part-0002.parquet", index=False
    )
    stores = {}
    for name, offline in (("feast", "duckdb"), ("plugin", PLUGIN)):
        store = _store(root, name, offline)
        store.apply(_definitions(root))
        stores[name] = store
    return {
        "root": root,
        "ticks": ticks,
        "daily": daily,
        "log": pd.concat([log, restated]),
        **stores,
    }


def _oracle(source: pd.DataFrame, entities: pd.DataFrame, cols: list[str], ttl) -> pd.DataFrame:
    """pandas merge_asof: the latest row at or before t within the TTL; created breaks ties."""
    right = source.sort_values(["event_timestamp", "created_timestamp"], kind="stable")
    right = right.drop_duplicates(["symbol", "event_timestamp"], keep="last")
    right = right[["symbol", "event_timestamp", *cols]].rename(columns={"event_timestamp": "__t"})
    left = entities.assign(__row=np.arange(len(entities))).sort_values("event_timestamp")
    out = pd.merge_asof(
        left,
        right.sort_values("__t"),
        left_on="event_timestamp",
        right_on="__t",
        by="symbol",
        direction="backward",
        tolerance=ttl,
    )
    return out.sort_values("__row").reset_index(drop=True)[cols]


def _entities(ticks: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    tick_times = ticks["event_timestamp"]
    tied = tick_times[tick_times.duplicated(keep=False)].iloc[0]
    gap = tick_times.diff().dt.total_seconds()
    after_gap = tick_times[gap > 2.5].iloc[0]  # a tick preceded by more than the 2 s TTL
    before_gap = tick_times[tick_times < after_gap].iloc[-1]
    ibm = daily[daily["symbol"] == "IBM"]["event_timestamp"].sort_values()
    aptv_first = daily[daily["symbol"] == "APTV"]["event_timestamp"].min()
    ms = pd.Timedelta(milliseconds=1)
    rows = [
        ("SPY", tied),  # several ticks in this millisecond: the last arrival wins
        ("SPY", tied - ms),
        ("SPY", before_gap + TICK_TTL),  # TTL boundary: included
        ("SPY", before_gap + TICK_TTL + ms),  # just outside: null
        ("SPY", tick_times.iloc[0] - ms),  # before the first tick
        ("IBM", ibm.iloc[300]),
        ("IBM", ibm.iloc[300] - pd.Timedelta(microseconds=1)),
        ("IBM", ibm.iloc[-1] + DAILY_TTL),
        ("IBM", ibm.iloc[-1] + DAILY_TTL + pd.Timedelta(seconds=1)),
        ("APTV", aptv_first - pd.Timedelta(days=1)),  # entity row before its history
        ("ZZZZ", ibm.iloc[300]),  # unknown entity
    ]
    n = 1500
    lo, hi = tick_times.min().value, tick_times.max().value + 3 * 10**9
    spy = pd.DataFrame(
        {"symbol": "SPY", "event_timestamp": pd.to_datetime(rng.integers(lo, hi, n), utc=True)}
    )
    lo, hi = daily["event_timestamp"].min().value, daily["event_timestamp"].max().value
    day = pd.DataFrame(
        {
            "symbol": rng.choice(DAILY, n),
            "event_timestamp": pd.to_datetime(rng.integers(lo, hi, n), utc=True),
        }
    )
    frame = pd.concat([pd.DataFrame(rows, columns=["symbol", "event_timestamp"]), spy, day])
    # Microsecond stamps: Feast's DuckDB store (like this plugin) works in microseconds.
    frame["event_timestamp"] = frame["event_timestamp"].dt.floor("us").astype("datetime64[ns, UTC]")
    frame["request_id"] = np.arange(len(frame))
    return frame.reset_index(drop=True)


def _frame(job, order_by: str = "request_id") -> pd.DataFrame:
    return job.to_df().sort_values(order_by).reset_index(drop=True)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert (np.isnan(x) == np.isnan(y)).all(), c
        np.testing.assert_array_equal(x[~np.isnan(x)], y[~np.isnan(y)], err_msg=c)


def test_plugin_is_configured(repo) -> None:
    from finfeast.feast_plugins.offline import FinfeastDuckDBOfflineStore

    assert isinstance(repo["plugin"]._get_provider().offline_store, FinfeastDuckDBOfflineStore)


@pytest.mark.parametrize("full_names", [False, True])
def test_feature_service_equals_feast_and_merge_asof(repo, full_names: bool) -> None:
    entities = _entities(repo["ticks"], repo["daily"])
    got = {}
    for name in ("feast", "plugin"):
        store = repo[name]
        job = store.get_historical_features(
            entity_df=entities,
            features=store.get_feature_service("svc"),
            full_feature_names=full_names,
        )
        if name == "plugin":  # the plugin's own as-of join answered, not Feast's fallback
            assert type(job).__name__ == "ArrowRetrievalJob"
        got[name] = _frame(job)
    views = {
        "px_returns": (repo["daily"], ["ret_1", "ret_5"], DAILY_TTL),
        "px_ranges": (repo["daily"], RNG, DAILY_TTL),
        "spy_ticks": (repo["ticks"], ["price", "size"], TICK_TTL),
    }
    plugin, feast = got["plugin"], got["feast"]
    assert len(plugin) == len(entities)
    assert list(plugin["symbol"]) == list(entities["symbol"])
    for view, (source, cols, ttl) in views.items():
        names = [f"{view}__{c}" if full_names else c for c in cols]
        assert set(names) <= set(plugin.columns)
        _assert_same(plugin, feast, names)
        expected = _oracle(source, entities, cols, ttl)
        _assert_same(plugin.rename(columns=dict(zip(names, cols, strict=True))), expected, cols)
    # The edges did what they are there for (independently of both stores).
    price = plugin["spy_ticks__price" if full_names else "price"]
    ticks = repo["ticks"]
    last_in_tie = ticks[ticks["event_timestamp"] == entities.loc[0, "event_timestamp"]]
    assert price.iloc[0] == last_in_tie.sort_values("created_timestamp")["price"].iloc[-1]
    assert not np.isnan(price.iloc[2]) and np.isnan(price.iloc[3]) and np.isnan(price.iloc[4])
    ret = plugin["px_returns__ret_1" if full_names else "ret_1"]
    assert not np.isnan(ret.iloc[7]) and np.isnan(ret.iloc[8])
    assert np.isnan(ret.iloc[9]) and np.isnan(ret.iloc[10])


def test_on_demand_view_and_feature_refs(repo) -> None:
    entities = _entities(repo["ticks"], repo["daily"]).iloc[5:]
    entities = entities[entities["symbol"] != "SPY"]
    refs = ["px_returns:ret_2", "px_ranges:range_1", "ret_over_range:ret_over_range"]
    got = {
        n: _frame(repo[n].get_historical_features(entity_df=entities, features=refs))
        for n in ("feast", "plugin")
    }
    _assert_same(got["plugin"], got["feast"], ["ret_2", "range_1", "ret_over_range"])
    daily = repo["daily"]
    expected = _oracle(daily, entities, ["ret_1", "range_1", "ret_2"], DAILY_TTL)
    np.testing.assert_allclose(
        got["plugin"]["ret_over_range"], expected["ret_1"] / expected["range_1"], rtol=1e-12
    )
    arrow = repo["plugin"].get_historical_features(entity_df=entities, features=refs).to_arrow()
    assert {"ret_2", "range_1", "ret_over_range"} <= set(arrow.column_names)


def test_directory_of_parts_and_missing_source(repo) -> None:
    entities = _entities(repo["ticks"], repo["daily"]).iloc[5:]
    entities = entities[entities["symbol"] != "SPY"]
    store = repo["plugin"]
    out = _frame(
        store.get_historical_features(
            entity_df=entities,
            features=["stream_log:ret_1", "empty_log:ret_1"],
            full_feature_names=True,
        )
    )
    expected = _oracle(repo["log"], entities, ["ret_1"], DAILY_TTL)
    _assert_same(out.rename(columns={"stream_log__ret_1": "ret_1"}), expected, ["ret_1"])
    assert out["stream_log__ret_1"].notna().sum() > 100
    assert out["empty_log__ret_1"].isna().all()


def test_materialize_equals_feast(repo) -> None:
    from datetime import UTC, datetime

    end = datetime(2019, 1, 1, tzinfo=UTC)
    views = ["px_returns", "px_ranges", "spy_ticks"]
    for name in ("feast", "plugin"):
        repo[name].materialize(datetime(2000, 1, 1, tzinfo=UTC), end, feature_views=views)
    # The push-fed views: parts are read, a missing directory loads nothing (never an error).
    repo["plugin"].materialize(
        datetime(2000, 1, 1, tzinfo=UTC), end, feature_views=["stream_log", "empty_log"]
    )
    rows = [{"symbol": s} for s in [*DAILY, "SPY", "ZZZZ"]]
    refs = [f"px_returns:{f}" for f in RET] + [f"px_ranges:{f}" for f in RNG]
    refs += ["spy_ticks:price", "spy_ticks:size"]
    got = {
        n: repo[n].get_online_features(features=refs, entity_rows=rows).to_df()
        for n in ("feast", "plugin")
    }
    cols = [*RET, *RNG, "price", "size"]
    _assert_same(got["plugin"], got["feast"], cols)
    daily = repo["daily"].sort_values(["event_timestamp", "created_timestamp"])
    last = daily.groupby("symbol").tail(1).set_index("symbol")
    for s in DAILY:
        row = got["plugin"].set_index("symbol").loc[s]
        np.testing.assert_allclose(row[RET].astype(float), last.loc[s, RET].astype(float))
    ticks = repo["ticks"].sort_values(["event_timestamp", "created_timestamp"])
    assert got["plugin"].set_index("symbol").loc["SPY", "price"] == ticks["price"].iloc[-1]
    online = (
        repo["plugin"]
        .get_online_features(
            features=["stream_log:ret_1", "empty_log:ret_1"],
            entity_rows=[{"symbol": "IBM"}],
            full_feature_names=True,
        )
        .to_dict()
    )
    log = repo["log"].sort_values(["event_timestamp", "created_timestamp"])
    assert online["stream_log__ret_1"] == [log["ret_1"].iloc[-1]]
    assert online["empty_log__ret_1"] == [None]


def test_push_offline_writes_a_part(repo) -> None:
    from feast.data_source import PushMode

    store = repo["plugin"]
    before = sorted((repo["root"] / "stream_log").glob("*.parquet"))
    row = (
        repo["log"]
        .iloc[[-1]]
        .assign(
            event_timestamp=repo["log"]["event_timestamp"].max() + pd.Timedelta(days=1),
            created_timestamp=repo["log"]["event_timestamp"].max() + pd.Timedelta(days=1),
            ret_1=0.125,
        )
    )
    store.push("stream_push", row, to=PushMode.OFFLINE)
    after = sorted((repo["root"] / "stream_log").glob("*.parquet"))
    assert len(after) == len(before) + 1 and after[-1].name.startswith("part-")
    got = store.get_historical_features(
        entity_df=row[["symbol", "event_timestamp"]], features=["stream_log:ret_1"]
    ).to_df()
    assert got["ret_1"].tolist() == [0.125]
