"""`store.push` through finfeast's provider writes what Feast's own push path writes.

Three repos per online store kind, same definitions, fed the same frames (real daily bars):
- `provider`: finfeast's plugin with `FinfeastProvider` (the columnar `ingest_df`, as the repo
  YAMLs configure it);
- `feast_path`: the same plugin with `provider: local`, i.e. Feast's own `ingest_df`
  (`_convert_arrow_to_proto`, one ValueProto per cell) into the plugin's `online_write_batch`;
- `feast_store`: Feast's own store (`redis` / `sqlite`) with `provider: local`.

The oracles are Feast's: the bytes Feast's conversion produces (`feast_path`, compared with the
stored Redis hashes / SQLite rows byte for byte) and what Feast's own store reads back
(`feast_store`, compared value and type). Frames cover every scalar dtype the plugins serve,
NaN/None/pd.NA nulls, pandas nullable dtypes, values Feast coerces (ints into a Float64 feature,
floats with NaN into an Int64 feature), an int join key, several rows of one entity in a batch,
and a frame the columnar path does not cover (string timestamps, Feast's path runs). The
provider's own counters show which path ran.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.plugins import contract_repo as cr

RUN = uuid.uuid4().hex[:6]
SYMBOLS = ["AAPL", "IBM", "MSFT", "GE"]
TYPES_VIEW, BARS_VIEW = "c_types", "c_bars"
TYPE_FEATURES = ["f64", "f32", "i64", "i32", "flag", "label", "blob", "seen"]
REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = ("provider", "feast_path", "feast_store")


def _extra_definitions(root: Path) -> list:
    from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp

    symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING)
    bar = Entity(name="bar", join_keys=["bar_id"], value_type=ValueType.INT64)
    batch = FileSource(
        name="t_src",
        path=str(root / "c_src.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    types = FeatureView(
        name=TYPES_VIEW,
        entities=[symbol],
        ttl=timedelta(0),
        schema=[
            Field(name="f64", dtype=Float64),
            Field(name="f32", dtype=Float32),
            Field(name="i64", dtype=Int64),
            Field(name="i32", dtype=Int32),
            Field(name="flag", dtype=Bool),
            Field(name="label", dtype=String),
            Field(name="blob", dtype=Bytes),
            Field(name="seen", dtype=UnixTimestamp),
        ],
        source=PushSource(name="p_types", batch_source=batch),
        online=True,
    )
    bars = FeatureView(
        name=BARS_VIEW,
        entities=[bar],
        ttl=timedelta(days=1),
        schema=[Field(name="close", dtype=Float64)],
        source=PushSource(name="p_bars", batch_source=batch),
        online=True,
    )
    return [bar, types, bars]


def _stamp(date: str, micros: int = 0) -> pd.Timestamp:
    close = pd.Timestamp(f"{date} 16:00", tz="America/New_York").tz_convert("UTC")
    return close + pd.Timedelta(microseconds=micros)


def _numpy_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes, NaN/None nulls, sub-second times; one row per symbol."""
    last = bars.groupby("Name").tail(1).reset_index(drop=True)
    n = len(last)
    frame = pd.DataFrame(
        {
            "symbol": last["Name"].tolist(),
            "event_timestamp": [_stamp(d, 250_125 + i) for i, d in enumerate(last["date"])],
            "created": [_stamp(d) for d in last["date"]],
            "f64": last["close"].astype(np.float64),
            "f32": last["open"].astype(np.float32),
            "i64": last["volume"].astype(np.int64),
            "i32": (last["volume"] // 1000).astype(np.int32),
            "flag": (last["close"] > last["open"]).to_numpy(),
            "label": [str(s) for s in last["Name"]],
            "blob": [str(s).encode() for s in last["Name"]],
            "seen": pd.to_datetime(last["date"]).dt.tz_localize("UTC"),
        }
    )
    frame.loc[1, "f64"] = float("nan")
    frame.loc[2, "f32"] = np.float32("nan")
    frame["label"] = frame["label"].astype(object)
    frame.loc[1, "label"] = None
    frame.loc[3, "label"] = float("nan")
    frame["blob"] = frame["blob"].astype(object)
    frame.loc[2, "blob"] = None
    assert n == len(SYMBOLS)
    return frame


def _nullable_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """pandas nullable dtypes with pd.NA: Feast's own conversion runs column by column."""
    frame = _numpy_frame(bars)
    frame["event_timestamp"] = frame["event_timestamp"] + pd.Timedelta(seconds=1)
    frame["f64"] = frame["f64"].astype("Float64")
    frame["i64"] = frame["i64"].astype("Int64")
    frame["i32"] = frame["i32"].astype("Int32")
    frame["flag"] = frame["flag"].astype("boolean")
    frame["label"] = pd.array([s if isinstance(s, str) else None for s in frame["label"]], "string")
    frame.loc[0, "f64"] = pd.NA
    frame.loc[1, "i64"] = pd.NA
    frame.loc[2, "i32"] = pd.NA
    frame.loc[3, "flag"] = pd.NA
    frame.loc[0, "label"] = pd.NA
    return frame


def _coerced_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Values Feast coerces: ints into Float64, floats with NaN into Int64, naive UTC times."""
    frame = _numpy_frame(bars)
    frame["event_timestamp"] = (frame["event_timestamp"] + pd.Timedelta(seconds=2)).dt.tz_localize(
        None
    )
    frame["f64"] = frame["i64"].to_numpy()  # int64 column, Float64 feature
    volume = frame["i64"].astype(np.float64)
    volume[2] = float("nan")
    frame["i64"] = volume  # float column with a NaN, Int64 feature
    frame["i32"] = frame["i32"].astype(np.int64)  # int64 column, Int32 feature (in range)
    frame["f32"] = frame["f32"].astype(np.float64)  # float64 column, Float32 feature
    return frame


def _string_times_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """ISO-string timestamps: not covered by the columnar path, so Feast's own path runs."""
    frame = _numpy_frame(bars)
    later = frame["event_timestamp"] + pd.Timedelta(seconds=3)
    frame["event_timestamp"] = [t.isoformat() for t in later]
    return frame


def _duplicates_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Several rows of one entity in one push: newer wins; an equal time keeps the first row."""
    frame = _numpy_frame(bars).iloc[[0, 0, 0, 1]].reset_index(drop=True)
    base = frame.loc[0, "event_timestamp"] + pd.Timedelta(seconds=10)
    frame["event_timestamp"] = [base, base + pd.Timedelta(milliseconds=5), base, base]
    frame["f64"] = [1.25, 2.5, 3.75, 4.0]
    return frame


def _bars_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """An int join key: one bar id (row number in the real file) per bar."""
    return pd.DataFrame(
        {
            "bar_id": bars.index.to_numpy(dtype=np.int64),
            "event_timestamp": [_stamp(d, 7) for d in bars["date"]],
            "created": [_stamp(d) for d in bars["date"]],
            "close": bars["close"].astype(np.float64).to_numpy(),
        }
    )


FRAMES = {
    "numpy": ("p_types", _numpy_frame, "columnar"),
    "nullable": ("p_types", _nullable_frame, "columnar"),
    "coerced": ("p_types", _coerced_frame, "columnar"),
    "string_times": ("p_types", _string_times_frame, "feast"),
    "duplicates": ("p_types", _duplicates_frame, "columnar"),
    "int_key": ("p_bars", _bars_frame, "columnar"),
}


@pytest.fixture(scope="module")
def bars(data_dir: Path) -> pd.DataFrame:
    return cr.real_bars(data_dir, SYMBOLS)


def _role_repo(tmp_path_factory, backend: str, role: str, tag: str):  # noqa: ANN001, ANN202
    kind = {
        "provider": f"finfeast_{backend}",
        "feast_path": f"finfeast_{backend}",
        "feast_store": f"feast_{backend}",
    }[role]
    provider = cr.FINFEAST_PROVIDER if role == "provider" else "local"
    project = f"pp_{backend[:2]}{role[:4]}{role[-2:]}_{tag}_{RUN}"
    root = tmp_path_factory.mktemp(f"{backend}_{role}_{tag}")
    store = cr.build(root, project, kind, provider=provider, extra=_extra_definitions(root))
    return store, root, project


def _require_redis(pytestconfig) -> None:  # noqa: ANN001
    module = pytestconfig.pluginmanager.get_plugin(str(REPO_ROOT / "tests" / "conftest.py"))
    module.require_service("redis")


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def pushed(request, tmp_path_factory, bars, pytestconfig):  # noqa: ANN001, ANN201
    """For each frame: three fresh repos (one per role), the frame pushed to each."""
    from feast.data_source import PushMode

    backend = request.param
    if backend == "redis":
        _require_redis(pytestconfig)
    out: dict[str, dict] = {}
    for tag, (source, build_frame, _path) in FRAMES.items():
        frame = build_frame(bars)
        out[tag] = {"frame": frame}
        for role in ROLES:
            store, root, project = _role_repo(tmp_path_factory, backend, role, tag)
            store.push(source, frame.copy(), to=PushMode.ONLINE)
            out[tag][role] = (store, root, project)
    yield backend, out
    if backend == "redis":
        for tag in out:
            for role in ROLES:
                cr.drop_redis_project(out[tag][role][2])


def _redis_hashes(project: str) -> dict[bytes, dict[bytes, bytes]]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    suffix = project.encode()
    keys = [k for k in client.scan_iter(count=10_000) if k.endswith(suffix)]
    return {k[: -len(suffix)]: client.hgetall(k) for k in keys}


def _sqlite_rows(root: Path, project: str, view: str, columns: str) -> list[tuple]:
    conn = sqlite3.connect(root / "online.db")
    try:
        return sorted(conn.execute(f'SELECT {columns} FROM "{project}_{view}"'))
    finally:
        conn.close()


def _view_of(tag: str) -> str:
    return BARS_VIEW if FRAMES[tag][0] == "p_bars" else TYPES_VIEW


@pytest.mark.parametrize("tag", list(FRAMES))
def test_stored_bytes_equal_feasts_own_conversion(pushed, tag) -> None:  # noqa: ANN001
    backend, out = pushed
    case = out[tag]
    ours, feast_path = case["provider"], case["feast_path"]
    counts = ours[0].provider.ingest_counts
    want_path = FRAMES[tag][2]
    assert counts[want_path] == 1 and sum(counts.values()) == 1, counts
    if backend == "redis":
        got, want = _redis_hashes(ours[2]), _redis_hashes(feast_path[2])
        assert got and got == want
        if tag != "duplicates":
            # Feast's own Redis store writes the same hashes for fresh keys
            assert got == _redis_hashes(case["feast_store"][2])
    else:
        view = _view_of(tag)
        cols = "entity_key, feature_name, value, value_text, event_ts, created_ts, event_ns"
        got = _sqlite_rows(ours[1], ours[2], view, cols)
        assert got and got == _sqlite_rows(feast_path[1], feast_path[2], view, cols)
        if tag != "duplicates":  # Feast's SQLite store keeps the last row of a batch
            stock = _sqlite_rows(
                case["feast_store"][1],
                case["feast_store"][2],
                view,
                "entity_key, feature_name, value, event_ts",
            )
            assert [(r[0], r[1], r[2], r[4]) for r in got] == stock


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("tag", [t for t in FRAMES if t != "duplicates"])
def test_read_back_equals_feasts_own_store(pushed, tag) -> None:  # noqa: ANN001
    _backend, out = pushed
    case = out[tag]
    view = _view_of(tag)
    frame = case["frame"]
    if view == BARS_VIEW:
        refs = [f"{BARS_VIEW}:close"]
        rows = [{"bar_id": int(b)} for b in frame["bar_id"]] + [{"bar_id": -1}]
    else:
        refs = [f"{TYPES_VIEW}:{f}" for f in TYPE_FEATURES]
        rows = [{"symbol": s} for s in frame["symbol"]] + [{"symbol": "NOPE"}]
    answers = [
        case[role][0].get_online_features(features=refs, entity_rows=rows).to_dict()
        for role in ROLES
    ]
    ours, _feast_path, feast_store = answers
    assert set(ours) == set(feast_store)
    for name in ours:
        pairs = zip(ours[name], feast_store[name], strict=True)
        assert all(_same(x, y) for x, y in pairs), (tag, name, ours[name], feast_store[name])
    if view == TYPES_VIEW:
        # exactly the frame's nulls (NaN, None, pd.NA) read back as None; the unknown entity too
        for name in TYPE_FEATURES:
            assert [v is None for v in ours[name]] == [*frame[name].isna().tolist(), True], name


def test_duplicates_newest_row_wins(pushed) -> None:  # noqa: ANN001
    _backend, out = pushed
    case = out["duplicates"]
    got = case["provider"][0].get_online_features(
        features=[f"{TYPES_VIEW}:f64"], entity_rows=[{"symbol": "AAPL"}]
    )
    assert got.to_dict()["f64"] == [2.5]  # the newest of three AAPL rows


def test_feast_path_runs_for_stores_without_columnar_writes(tmp_path, bars) -> None:  # noqa: ANN001
    """Feast's own stores under finfeast's provider: Feast's `ingest_df`, same values read."""
    from feast.data_source import PushMode

    frame = _numpy_frame(bars)
    store = cr.build(
        tmp_path,
        f"pp_stock_{RUN}",
        "feast_sqlite",
        provider=cr.FINFEAST_PROVIDER,
        extra=_extra_definitions(tmp_path),
    )
    store.push("p_types", frame, to=PushMode.ONLINE)
    assert store.provider.ingest_counts == {"columnar": 0, "feast": 1}
    got = store.get_online_features(
        features=[f"{TYPES_VIEW}:i64"], entity_rows=[{"symbol": s} for s in frame["symbol"]]
    ).to_dict()
    assert got["i64"] == frame["i64"].tolist()


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_push_async_same_bytes_as_feasts_path(
    tmp_path_factory, bars, backend, pytestconfig
) -> None:  # noqa: ANN001, E501
    """`push_async` (what `feast serve`'s `/push` awaits) reaches `ingest_df_async`: same rows."""
    import asyncio

    from feast.data_source import PushMode

    if backend == "redis":
        _require_redis(pytestconfig)

    frame = _numpy_frame(bars)
    repos = {role: _role_repo(tmp_path_factory, backend, role, "async") for role in ROLES[:2]}
    try:
        ours, feast_path = repos["provider"], repos["feast_path"]
        asyncio.run(ours[0].push_async("p_types", frame.copy(), to=PushMode.ONLINE))
        if backend == "redis":
            asyncio.run(feast_path[0].push_async("p_types", frame.copy(), to=PushMode.ONLINE))
        else:  # Feast's async path has no SQLite write; its sync push is the oracle
            with pytest.raises(NotImplementedError):
                asyncio.run(feast_path[0].push_async("p_types", frame.copy(), to=PushMode.ONLINE))
            feast_path[0].push("p_types", frame.copy(), to=PushMode.ONLINE)
        assert ours[0].provider.ingest_counts == {"columnar": 1, "feast": 0}
        if backend == "redis":
            got = _redis_hashes(ours[2])
            assert got and got == _redis_hashes(feast_path[2])
        else:
            cols = "entity_key, feature_name, value, value_text, event_ts, created_ts, event_ns"
            got = _sqlite_rows(ours[1], ours[2], TYPES_VIEW, cols)
            assert got and got == _sqlite_rows(feast_path[1], feast_path[2], TYPES_VIEW, cols)
    finally:
        if backend == "redis":
            for _store, _root, project in repos.values():
                cr.drop_redis_project(project)
