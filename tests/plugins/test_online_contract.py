"""Online-store contract: finfeast's plugins answer like Feast's own Redis and SQLite stores.

Each case runs against four stores built from the same definitions and fed the same writes
(real daily bars): Feast's `redis` and `sqlite` stores and finfeast's two plugins. The oracle
is Feast's own store; where Feast's stores disagree with each other or have no rule, the oracle
is named in the test:
- newer event time wins and sub-second times: Feast's Redis store (Feast's SQLite store keeps
  the last write and whole seconds; both are asserted, so a Feast change shows up here);
- NOT_FOUND for an unknown entity: Feast's SQLite store (Feast's Redis store says PRESENT);
- OUTSIDE_MAX_AGE: Feast's own rule from its precomputed-vector path (now - event > view TTL),
  evaluated here from the event times the test wrote (Feast's per-view path never sets it).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.plugins import contract_repo as cr

RUN = uuid.uuid4().hex[:6]
SYMBOLS = ["AAPL", "IBM", "MSFT"]
ENTITIES = ["AAPL", "IBM", "MSFT", "NOPE", "AAPL"]
REFS = [f"{cr.ALL_VIEW}:{f}" for f in cr.ALL_FEATURES] + [f"{cr.TTL_VIEW}:close"]
PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE = 1, 3, 4
REPO_ROOT = Path(__file__).resolve().parents[2]


def _close_utc(date: str) -> pd.Timestamp:
    return pd.Timestamp(f"{date} 16:00", tz="America/New_York").tz_convert("UTC")


def _writes(bars: pd.DataFrame, now: pd.Timestamp) -> list[tuple[str, pd.DataFrame]]:
    """The same pushes for every store: newest rows (sub-second), an older row, TTL rows."""
    last = bars.groupby("Name").tail(1).set_index("Name")
    prev = bars.groupby("Name").head(1).set_index("Name")
    newest = []
    for i, sym in enumerate(SYMBOLS):
        r = last.loc[sym]
        newest.append(
            {
                "symbol": sym,
                "event_timestamp": _close_utc(r["date"]) + pd.Timedelta(microseconds=250_125 + i),
                "close": float(r["close"]),
                "volume": int(r["volume"]),
                "up_day": bool(r["close"] > r["open"]),
                "name": sym,
            }
        )
    newest[2]["close"] = float("nan")  # MSFT: NaN -> null
    newest[1]["name"] = None  # IBM: None -> null
    r = prev.loc["AAPL"]
    older = dict(newest[0])
    older.update(
        event_timestamp=newest[0]["event_timestamp"] - pd.Timedelta(milliseconds=100),
        close=float(r["close"]),
        volume=int(r["volume"]),
        up_day=bool(r["close"] > r["open"]),
    )
    ttl_rows = [
        {"symbol": "AAPL", "event_timestamp": now - pd.Timedelta(hours=2), "close": 1.5},
        {"symbol": "IBM", "event_timestamp": now - pd.Timedelta(minutes=10), "close": 2.5},
    ]
    return [
        ("p_all", pd.DataFrame(newest)),
        ("p_all", pd.DataFrame([older])),
        ("p_ttl", pd.DataFrame(ttl_rows)),
    ]


def _push(store, writes) -> None:  # noqa: ANN001
    from feast.data_source import PushMode

    for source, frame in writes:
        store.push(source, frame, to=PushMode.ONLINE)


@pytest.fixture(scope="module")
def bars(data_dir: Path) -> pd.DataFrame:
    return cr.real_bars(data_dir, SYMBOLS)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, bars, pytestconfig):  # noqa: ANN001, ANN201
    module = pytestconfig.pluginmanager.get_plugin(str(REPO_ROOT / "tests" / "conftest.py"))
    module.require_service("redis")
    now = pd.Timestamp.now(tz="UTC")
    writes = _writes(bars, now)
    built = {}
    for kind in cr.KINDS:
        project = f"oc_{kind}_{RUN}"
        root = tmp_path_factory.mktemp(kind)
        store = cr.build(root, project, kind)
        _push(store, writes)
        built[kind] = (store, root, project)
    yield {"stores": built, "writes": writes, "now": now}
    for kind, (_s, _r, project) in built.items():
        if "redis" in kind:
            cr.drop_redis_project(project)


def _read(store, refs=REFS, entities=ENTITIES, full=True):  # noqa: ANN001, ANN201
    resp = store.get_online_features(
        features=refs, entity_rows=[{"symbol": e} for e in entities], full_feature_names=full
    )
    return resp


def _cells(resp) -> dict[str, list[tuple]]:  # noqa: ANN001
    """name -> per entity (python value, status, (seconds, nanos)) from the response proto."""
    from feast.type_map import feast_value_type_to_python_type

    out = {}
    proto = resp.proto
    for name, vec in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        stamps = list(vec.event_timestamps) or [None] * len(vec.values)
        out[name] = [
            (
                feast_value_type_to_python_type(v),
                s,
                (t.seconds, t.nanos) if t is not None else None,
            )
            for v, s, t in zip(vec.values, vec.statuses, stamps, strict=True)
        ]
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def _assert_dicts(a: dict, b: dict, skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    assert set(a) == set(b)
    for name in a:
        for i, (x, y) in enumerate(zip(a[name], b[name], strict=True)):
            if i not in skip:
                assert _same(x, y), (name, ENTITIES[i], x, y)


@pytest.mark.parametrize("plugin", ["finfeast_redis", "finfeast_sqlite"])
def test_plugin_repos_pushed_through_the_columnar_provider(stores, plugin) -> None:  # noqa: ANN001
    """Every case below reads rows `FinfeastProvider.ingest_df` wrote (not Feast's ingest_df)."""
    store = stores["stores"][plugin][0]
    assert type(store.provider).__name__ == "FinfeastProvider"
    assert store.provider.ingest_counts == {"columnar": len(stores["writes"]), "feast": 0}
    for kind in ("feast_redis", "feast_sqlite"):
        assert type(stores["stores"][kind][0].provider).__name__ == "PassthroughProvider"


@pytest.mark.parametrize("plugin", ["finfeast_redis", "finfeast_sqlite"])
def test_values_every_dtype_nulls_nan_unknown_match_feast_redis(stores, plugin) -> None:  # noqa: ANN001
    s = stores["stores"]
    got = _read(s[plugin][0])
    want = _read(s["feast_redis"][0]).to_dict()
    assert type(got).__name__ == "ColumnarOnlineResponse"  # the lean path answered
    _assert_dicts(got.to_dict(), want)
    # the lazily built proto says the same as to_dict
    cells = _cells(got)
    for name, values in got.to_dict().items():
        assert all(_same(c[0], v) for c, v in zip(cells[name], values, strict=True)), name
    # dtypes survive: float64, int64, bool, string, nulls (NaN and None) read back as None
    d = got.to_dict()
    assert isinstance(d["c_all__close"][0], float) and isinstance(d["c_all__volume"][0], int)
    assert isinstance(d["c_all__up_day"][0], bool) and d["c_all__name"][0] == "AAPL"
    assert d["c_all__close"][2] is None and d["c_all__name"][1] is None
    assert all(d[n][3] is None for n in d if n != "symbol")  # unknown entity


def test_sqlite_plugin_matches_feast_sqlite_except_its_missing_guard(stores, bars) -> None:  # noqa: ANN001
    s = stores["stores"]
    plugin = _read(s["finfeast_sqlite"][0]).to_dict()
    feast = _read(s["feast_sqlite"][0]).to_dict()
    _assert_dicts(plugin, feast, skip={0, 4})  # AAPL: Feast's SQLite lets the older row win
    older = stores["writes"][1][1].iloc[0]
    assert feast["c_all__close"][0] == older["close"] != plugin["c_all__close"][0]


def test_newer_event_time_wins_like_feast_redis(stores, bars) -> None:  # noqa: ANN001
    newest = stores["writes"][0][1].iloc[0]
    for kind in ("feast_redis", "finfeast_redis", "finfeast_sqlite"):
        d = _read(stores["stores"][kind][0]).to_dict()
        assert d["c_all__close"][0] == newest["close"], kind
        assert d["c_all__volume"][0] == newest["volume"], kind


def test_statuses_not_found_and_outside_max_age(stores) -> None:  # noqa: ANN001
    s = stores["stores"]
    feast_sqlite = _cells(_read(s["feast_sqlite"][0]))
    feast_redis = _cells(_read(s["feast_redis"][0]))
    # the oracle rule for max age, from the event times written
    ttl_rows = stores["writes"][2][1].set_index("symbol")["event_timestamp"]
    now = pd.Timestamp.now(tz="UTC")
    expect_ttl = []
    for e in ENTITIES:
        if e not in ttl_rows:
            expect_ttl.append(NOT_FOUND)
        elif now - ttl_rows[e] > pd.Timedelta(hours=cr.TTL_HOURS):
            expect_ttl.append(OUTSIDE_MAX_AGE)
        else:
            expect_ttl.append(PRESENT)
    assert expect_ttl == [OUTSIDE_MAX_AGE, PRESENT, NOT_FOUND, NOT_FOUND, OUTSIDE_MAX_AGE]
    for plugin in ("finfeast_redis", "finfeast_sqlite"):
        cells = _cells(_read(s[plugin][0]))
        for f in cr.ALL_FEATURES:
            name = f"c_all__{f}"
            assert [c[1] for c in cells[name]] == [c[1] for c in feast_sqlite[name]], (plugin, f)
        assert [c[1] for c in cells["c_ttl__close"]] == expect_ttl, plugin
        # values outside max age are still returned (as Feast's precomputed path does)
        assert cells["c_ttl__close"][0][0] == feast_redis["c_ttl__close"][0][0] == 1.5
    # Feast's own stores: NOT_FOUND on SQLite, PRESENT-with-null on Redis; never OUTSIDE_MAX_AGE
    assert feast_sqlite["c_all__close"][3][1] == NOT_FOUND
    assert (
        feast_redis["c_all__close"][3][1] == PRESENT and feast_redis["c_all__close"][3][0] is None
    )
    assert all(c[1] != OUTSIDE_MAX_AGE for c in feast_redis["c_ttl__close"])


def test_sub_second_event_times(stores) -> None:  # noqa: ANN001
    s = stores["stores"]
    redis_cells = _cells(_read(s["feast_redis"][0]))
    sqlite_cells = _cells(_read(s["feast_sqlite"][0]))
    newest = stores["writes"][0][1]
    for plugin in ("finfeast_redis", "finfeast_sqlite"):
        cells = _cells(_read(s[plugin][0]))
        for i in (0, 1, 2):
            want = newest.iloc[i]["event_timestamp"]
            got = cells["c_all__close"][i][2]
            assert got == redis_cells["c_all__close"][i][2], plugin
            assert got == (int(want.timestamp()), want.microsecond * 1000 + want.nanosecond)
            # Feast's SQLite store keeps whole seconds: same second as the plugin
            assert sqlite_cells["c_all__close"][i][2][0] == got[0]
        assert cells["c_all__close"][3][2] == (0, 0)  # unknown entity: Feast's null timestamp


@pytest.mark.parametrize("plugin", ["finfeast_redis", "finfeast_sqlite"])
def test_stock_feast_reads_rows_the_plugin_wrote(stores, plugin) -> None:  # noqa: ANN001
    store, root, project = stores["stores"][plugin]
    stock = cr.stock_twin(root, project, plugin)
    refs = [f"{cr.ALL_VIEW}:{f}" for f in cr.ALL_FEATURES]
    ents = ["AAPL", "IBM", "MSFT"]
    want = _read(stock, refs, ents).to_dict()
    assert type(_read(stock, refs, ents)).__name__ == "OnlineResponse"
    got = _read(store, refs, ents).to_dict()
    assert set(got) == set(want)
    for name in got:
        assert all(_same(x, y) for x, y in zip(got[name], want[name], strict=True)), name


def test_key_ttl_seconds_expiry(tmp_path, bars) -> None:  # noqa: ANN001
    import redis

    from finfeast.feast_plugins import encoding as enc

    client = redis.Redis(host="127.0.0.1", port=6379)
    writes = _writes(bars, pd.Timestamp.now(tz="UTC"))[:1]
    stores = {}
    for kind in ("feast_redis", "finfeast_redis"):
        project = f"okt_{kind}_{RUN}"
        stores[kind] = (cr.build(tmp_path / kind, project, kind, key_ttl=2), project)
        _push(stores[kind][0], writes)
    try:
        assert stores["finfeast_redis"][0].provider.ingest_counts == {"columnar": 1, "feast": 0}
        for kind, (_store, project) in stores.items():
            key = enc.redis_key(enc.entity_key_bytes(["symbol"], ["AAPL"]), project)
            assert 0 < client.ttl(key) <= 2, kind
        time.sleep(2.3)
        for kind, (store, _project) in stores.items():
            cells = _cells(_read(store, [f"{cr.ALL_VIEW}:close"], ["AAPL"], full=False))
            assert cells["close"][0][0] is None, kind
        plugin = _cells(_read(stores["finfeast_redis"][0], [f"{cr.ALL_VIEW}:close"], ["AAPL"]))
        assert plugin["c_all__close"][0][1] == NOT_FOUND
    finally:
        for _store, project in stores.values():
            cr.drop_redis_project(project)


@pytest.mark.parametrize(
    "kind", ["feast_sqlite", "finfeast_sqlite", "feast_redis", "finfeast_redis"]
)
def test_feature_view_versioning(tmp_path, bars, kind) -> None:  # noqa: ANN001
    import contextlib
    import io

    project = f"ov_{kind.split('_')[0][:2]}{kind.split('_')[1][:2]}_{RUN}"
    store = cr.build(tmp_path, project, kind, versioning=True)
    with contextlib.redirect_stdout(io.StringIO()):
        store.apply(cr.definitions(tmp_path, extra_feature=True))  # a schema change: version 1
    view = store.get_feature_view(cr.ALL_VIEW)
    assert view.current_version_number == 1
    try:
        frame = _writes(bars, pd.Timestamp.now(tz="UTC"))[0][1].assign(open=1.25)
        _push(store, [("p_all", frame)])
        if kind.startswith("finfeast"):  # written by the provider's columnar path
            assert store.provider.ingest_counts == {"columnar": 1, "feast": 0}
        got = _read(store, [f"{cr.ALL_VIEW}:close", f"{cr.ALL_VIEW}:open"], ["AAPL"], False)
        d = got.to_dict()
        assert d["open"] == [1.25] and d["close"] == [frame.iloc[0]["close"]]
        # stored under the versioned name, as Feast's own stores do
        if "sqlite" in kind:
            import sqlite3

            conn = sqlite3.connect(tmp_path / "online.db")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            assert f"{project}_{cr.ALL_VIEW}_v1" in tables
        else:
            import redis

            from finfeast.feast_plugins import encoding as enc

            client = redis.Redis(host="127.0.0.1", port=6379)
            key = enc.redis_key(enc.entity_key_bytes(["symbol"], ["AAPL"]), project)
            assert client.hexists(key, f"_ts:{cr.ALL_VIEW}_v1")
            assert client.hexists(key, enc.feature_field(f"{cr.ALL_VIEW}_v1", "open"))
    finally:
        if "redis" in kind:
            cr.drop_redis_project(project)


WRITER_SCRIPT = r"""
import sys
from stream_jobs.online_writer import RedisOnlineWriter, SqliteOnlineWriter
from stream_jobs.views import ViewSpec
kind, target, project, yaml = sys.argv[1:5]
view = ViewSpec("c_all", "symbol", (("close", "float64"), ("volume", "int64"), ("up_day", "bool"), ("name", "string")))
rows = [("SUB_W", 1381173120250, {"close": 101.25, "volume": 7, "up_day": True, "name": "w"}),
        ("SUB_W", 1381173120100, {"close": 1.0, "volume": 1, "up_day": False, "name": "old"})]
if kind == "redis":
    import redis
    writer = RedisOnlineWriter(redis.Redis(host="127.0.0.1", port=6379), project)
else:
    writer = SqliteOnlineWriter(target, project)
stats = writer.write(view, rows)
assert stats.written == 1, stats
# and Feast's own push, through the plugin, from this process too
import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
store = FeatureStore(repo_path=str(__import__("pathlib").Path(yaml).parent), fs_yaml_file=yaml)
frame = pd.DataFrame([{"symbol": "SUB_P", "event_timestamp": pd.Timestamp("2013-10-07 19:12:00.5", tz="UTC"),
                       "close": 55.5, "volume": 9, "up_day": False, "name": "p"}])
store.push("p_all", frame, to=PushMode.ONLINE)
print("ok")
"""


@pytest.mark.parametrize("plugin", ["finfeast_sqlite", "finfeast_redis"])
def test_rows_written_by_another_process_read_back(stores, plugin) -> None:  # noqa: ANN001
    store, root, project = stores["stores"][plugin]
    kind = "redis" if "redis" in plugin else "sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WRITER_SCRIPT,
            kind,
            str(root / "online.db"),
            project,
            str(root / "feature_store.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=str(REPO_ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    refs = [f"{cr.ALL_VIEW}:{f}" for f in cr.ALL_FEATURES]
    for reader in (store, cr.stock_twin(root, project, plugin)):
        resp = _read(reader, refs, ["SUB_W", "SUB_P"], full=False)
        d = resp.to_dict()
        assert d["close"] == [101.25, 55.5] and d["volume"] == [7, 9]
        assert d["up_day"] == [True, False] and d["name"] == ["w", "p"]
        cells = _cells(resp)
        # Feast's own SQLite reader keeps whole seconds; the plugin and Redis keep the rest
        nanos = 250_000_000 if reader is store or kind == "redis" else 0
        assert cells["close"][0][2] == (1381173120, nanos)
        assert cells["close"][1][2][0] == 1381173120
    if kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(root / "online.db")
        types = {r[0] for r in conn.execute(f'SELECT typeof(event_ts) FROM "{project}_c_all"')}
        assert types == {"integer"}  # Feast's format, whatever process wrote
