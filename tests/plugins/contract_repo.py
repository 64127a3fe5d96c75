"""A tiny Feast repo for the online-store contract tests: one per store kind, same definitions.

Values are real daily bars (close, volume, up-day flag, symbol name) from the S&P 500 file; each
repo has its own Feast project (Redis keys never collide) and registry, applied in-process.
"""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta
from pathlib import Path

import pandas as pd

PLUGIN = "finfeast.feast_plugins.online."
KINDS = {
    "feast_redis": "redis",
    "feast_sqlite": "sqlite",
    "finfeast_redis": PLUGIN + "FinfeastRedisOnlineStore",
    "finfeast_sqlite": PLUGIN + "FinfeastSqliteOnlineStore",
}
# finfeast's provider (columnar push) with the plugins, as the repo YAMLs configure it
FINFEAST_PROVIDER = "finfeast.feast_plugins.provider.FinfeastProvider"
FINFEAST_REGISTRY_STORE = "finfeast.feast_plugins.registry.FinfeastFileRegistryStore"
ALL_VIEW, TTL_VIEW = "c_all", "c_ttl"
ALL_FEATURES = ["close", "volume", "up_day", "name"]  # float64, int64, bool, string
TTL_HOURS = 1


def yaml_text(
    root: Path,
    project: str,
    kind: str,
    versioning: bool,
    key_ttl: int | None,
    provider: str | None = None,
) -> str:
    """The repo YAML: the plugins get finfeast's provider and registry store (as the repo
    YAMLs configure them), Feast's stores `provider: local` and Feast's file registry store."""
    online_type = KINDS[kind]
    finfeast = kind.startswith("finfeast")
    if provider is None:
        provider = FINFEAST_PROVIDER if finfeast else "local"
    lines = [
        f"project: {project}",
        f"provider: {provider}",
        "registry:",
        "  registry_type: file",
        *([f"  registry_store_type: {FINFEAST_REGISTRY_STORE}"] if finfeast else []),
        f"  path: {root / 'registry.db'}",
        "  cache_ttl_seconds: 60",
    ]
    if versioning:
        lines.append("  enable_online_feature_view_versioning: true")
    lines += ["online_store:", f"  type: {online_type}"]
    if "redis" in kind:
        lines.append('  connection_string: "127.0.0.1:6379,db=0"')
        if key_ttl:
            lines.append(f"  key_ttl_seconds: {key_ttl}")
    else:
        lines.append(f"  path: {root / 'online.db'}")
    lines += ["offline_store:", "  type: duckdb", "entity_key_serialization_version: 3"]
    return "\n".join(lines) + "\n"


def definitions(root: Path, extra_feature: bool = False) -> list:
    from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Bool, Float64, Int64, String

    symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING)
    batch = FileSource(
        name="c_src", path=str(root / "c_src.parquet"), timestamp_field="event_timestamp"
    )
    schema = [
        Field(name="close", dtype=Float64),
        Field(name="volume", dtype=Int64),
        Field(name="up_day", dtype=Bool),
        Field(name="name", dtype=String),
    ]
    if extra_feature:
        schema.append(Field(name="open", dtype=Float64))
    views = [
        FeatureView(
            name=ALL_VIEW,
            entities=[symbol],
            ttl=timedelta(0),
            schema=schema,
            source=PushSource(name="p_all", batch_source=batch),
            online=True,
        ),
        FeatureView(
            name=TTL_VIEW,
            entities=[symbol],
            ttl=timedelta(hours=TTL_HOURS),
            schema=[Field(name="close", dtype=Float64)],
            source=PushSource(name="p_ttl", batch_source=batch),
            online=True,
        ),
    ]
    return [symbol, *views]


def build(
    root: Path,
    project: str,
    kind: str,
    versioning: bool = False,
    key_ttl: int | None = None,
    provider: str | None = None,
    extra: list | None = None,
):  # noqa: ANN201 - a feast.FeatureStore
    """Write the yaml, an (empty-schema) batch source, apply; returns the FeatureStore."""
    from feast import FeatureStore

    root.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "symbol": ["AAPL"],
            "event_timestamp": [pd.Timestamp("2013-01-02 21:00", tz="UTC")],
            "close": [1.0],
            "volume": [1],
            "up_day": [True],
            "name": ["AAPL"],
            "open": [1.0],
        }
    )
    frame.to_parquet(root / "c_src.parquet", index=False)
    (root / "feature_store.yaml").write_text(
        yaml_text(root, project, kind, versioning, key_ttl, provider)
    )
    store = FeatureStore(repo_path=str(root), fs_yaml_file=root / "feature_store.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        store.apply(definitions(root) + list(extra or []))
    return store


def stock_twin(root: Path, project: str, kind: str):  # noqa: ANN201
    """Stock Feast's store on the same online data and registry as a plugin repo."""
    from feast import FeatureStore

    stock = "feast_redis" if "redis" in kind else "feast_sqlite"
    path = root / "feature_store_stock.yaml"
    path.write_text(yaml_text(root, project, stock, False, None, "local"))
    return FeatureStore(repo_path=str(root), fs_yaml_file=path)


def real_bars(data_dir: Path, symbols: list[str]) -> pd.DataFrame:
    """The last two real daily bars of each symbol (close, volume, open)."""
    bars = pd.read_csv(data_dir / "daily" / "all_stocks_5yr.csv.gz")
    bars = bars[bars["Name"].isin(symbols)].sort_values(["Name", "date"])
    return bars.groupby("Name").tail(2).reset_index(drop=True)


def drop_redis_project(project: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    suffix = project.encode()
    doomed = [k for k in client.scan_iter(count=10_000) if k.endswith(suffix)]
    if doomed:
        client.delete(*doomed)
