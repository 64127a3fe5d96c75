"""A small, self-contained Feast repo of ~50 real-price features for serving tests and benchmarks.

A test and benchmark fixture (not product code): it lives in bench/ and tests import it from here.

Why it exists: serving latency depends on the number of features and entities, not on what the
features mean, and the serving tests must not wait for (or break with) the full ingestion and
transforms pipeline. This module builds a repo from the real S&P 500 daily file
(`daily/all_stocks_5yr.csv.gz` under the data directory): trailing returns `ret_<k>` and trailing
high/low ranges `range_<k>` (k = 1..25), all backward-looking, so a value stamped at a session
close uses only bars up to that close. Two feature views (`px_returns`, `px_ranges`) and one
feature service `px_v1` (50 features) with feature logging to Parquet, in its own Feast project.

The repo directory holds a `feature_store.yaml` (so `feast -f ... serve` and `finfeast serve
--feature-store-yaml` work on it); definitions are applied in-process with `FeatureStore.apply`.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

LAGS = range(1, 26)
RETURN_FEATURES = [f"ret_{k}" for k in LAGS]
RANGE_FEATURES = [f"range_{k}" for k in LAGS]
SERVICE = "px_v1"
VIEWS = {"px_returns": RETURN_FEATURES, "px_ranges": RANGE_FEATURES}
SOURCE_TABLE = "px_features"
PUSH_SOURCE = "px_push"
LIVE_VIEW = "px_live"
# The sessions close at 16:00 New York time: a daily bar is known from then on.
CLOSE_TIME = "16:00"


def load_price_features(data_dir: Path, symbols: list[str] | None = None) -> pd.DataFrame:
    """Per-symbol trailing features from real daily bars, stamped at the session close (UTC)."""
    import numpy as np
    import pandas as pd

    bars = pd.read_csv(data_dir / "daily" / "all_stocks_5yr.csv.gz")
    bars = bars.rename(columns={"Name": "symbol"})
    if symbols is not None:
        bars = bars[bars["symbol"].isin(symbols)]
    bars = bars.dropna(subset=["close", "high", "low"]).sort_values(["symbol", "date"])
    local_close = pd.to_datetime(bars["date"] + " " + CLOSE_TIME)
    bars["event_timestamp"] = local_close.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    grouped = bars.groupby("symbol", sort=False)
    out = {
        "symbol": bars["symbol"].to_numpy(),
        "event_timestamp": bars["event_timestamp"],
        "close": bars["close"],
    }
    for k in LAGS:
        out[f"ret_{k}"] = bars["close"] / grouped["close"].shift(k) - 1.0
    for k in LAGS:
        hi = grouped["high"].transform(lambda s, k=k: s.rolling(k).max())
        lo = grouped["low"].transform(lambda s, k=k: s.rolling(k).min())
        out[f"range_{k}"] = hi / lo - 1.0
    frame = pd.DataFrame(out).reset_index(drop=True)
    frame["created_timestamp"] = frame["event_timestamp"]
    feature_cols = ["close", *RETURN_FEATURES, *RANGE_FEATURES]
    frame[feature_cols] = frame[feature_cols].astype(np.float64)
    return frame


@dataclass(frozen=True)
class PriceRepo:
    """Where a built price repo lives and what it serves."""

    path: Path
    project: str
    online: str  # "redis" / "sqlite" (Feast's stores) or "finfeast_redis" / "finfeast_sqlite"
    offline: str  # "duckdb", "file" (Dask) or "postgres"
    symbols: tuple[str, ...]

    @property
    def yaml(self) -> Path:
        return self.path / "feature_store.yaml"

    @property
    def log_dir(self) -> Path:
        """Parquet directory of the feature service's serving logs."""
        return self.path / "serving_logs" / SERVICE

    @property
    def features(self) -> list[str]:
        return RETURN_FEATURES + RANGE_FEATURES

    def store(self) -> FeatureStore:
        from feast import FeatureStore

        return FeatureStore(repo_path=str(self.path), fs_yaml_file=self.yaml)


def _yaml(
    project: str, path: Path, online: str, offline: str, redis_conn: str, pg: dict[str, str]
) -> str:
    # finfeast's provider (columnar push) and registry store go with finfeast's online stores,
    # as in the repo YAMLs
    provider = "finfeast.feast_plugins.provider.FinfeastProvider"
    lines = [
        f"project: {project}",
        f"provider: {provider if online.startswith('finfeast') else 'local'}",
        "registry:",
        "  registry_type: file",
        *(
            ["  registry_store_type: finfeast.feast_plugins.registry.FinfeastFileRegistryStore"]
            if online.startswith("finfeast")
            else []
        ),
        f"  path: {path / 'registry.db'}",
        "  cache_ttl_seconds: 60",
        "online_store:",
    ]
    plugin = "finfeast.feast_plugins.online.Finfeast"
    if online in ("redis", "finfeast_redis"):
        kind = "redis" if online == "redis" else plugin + "RedisOnlineStore"
        lines += [f"  type: {kind}", f'  connection_string: "{redis_conn}"']
    else:
        kind = "sqlite" if online == "sqlite" else plugin + "SqliteOnlineStore"
        lines += [f"  type: {kind}", f"  path: {path / 'online.db'}"]
    lines.append("offline_store:")
    if offline == "postgres":
        lines += ["  type: postgres"] + [f"  {k}: {v}" for k, v in pg.items()]
    elif offline == "file":
        lines.append("  type: file")  # Feast's Dask-based file offline store
    else:
        lines.append("  type: duckdb")
    lines.append("entity_key_serialization_version: 3")
    return "\n".join(lines) + "\n"


def _definitions(repo: PriceRepo, source_path: Path):
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.feature_logging import LoggingConfig
    from feast.infra.offline_stores.file_source import FileLoggingDestination
    from feast.types import Float64

    symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING)
    if repo.offline == "postgres":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        source = PostgreSQLSource(
            name=SOURCE_TABLE,
            table=SOURCE_TABLE,
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
        )
    else:
        source = FileSource(
            name=SOURCE_TABLE,
            path=str(source_path),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
        )
    views = [
        FeatureView(
            name=name,
            entities=[symbol],
            ttl=timedelta(days=10),
            schema=[Field(name=f, dtype=Float64) for f in features],
            source=source,
            online=True,
            tags={"family": name.removeprefix("px_")},
        )
        for name, features in VIEWS.items()
    ]
    push = PushSource(name=PUSH_SOURCE, batch_source=source)
    live = FeatureView(
        name=LIVE_VIEW,
        entities=[symbol],
        ttl=timedelta(days=10),
        schema=[Field(name="close", dtype=Float64)],
        source=push,
        online=True,
    )
    logging = None
    if repo.offline != "postgres":
        # Feast's PostgreSQL offline store has no logging destination; see docs/serving.md.
        logging = LoggingConfig(destination=FileLoggingDestination(path=str(repo.log_dir)))
    service = FeatureService(
        name=SERVICE,
        features=views,
        description="All 50 real-price features (serving tests and benchmarks).",
        logging_config=logging,
    )
    return [symbol, *views, live, service]


def build_price_repo(
    root: Path,
    data_dir: Path,
    project: str,
    online: str = "redis",
    offline: str = "duckdb",
    redis_conn: str = "127.0.0.1:6379,db=0",
    pg: dict[str, str] | None = None,
    symbols: list[str] | None = None,
    materialize: bool = True,
) -> PriceRepo:
    """Write the repo under `root`, load the source table, apply, and materialize the latest rows."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    frame = load_price_features(data_dir, symbols)
    repo = PriceRepo(
        path=root,
        project=project,
        online=online,
        offline=offline,
        symbols=tuple(sorted(frame["symbol"].unique())),
    )
    source_path = root / f"{SOURCE_TABLE}.parquet"
    if offline == "postgres":
        _load_postgres_table(frame, pg or {})
    else:
        frame.to_parquet(source_path, index=False)
    repo.yaml.write_text(_yaml(project, root, online, offline, redis_conn, pg or {}))
    store = repo.store()
    with contextlib.redirect_stdout(io.StringIO()):
        store.apply(_definitions(repo, source_path))
        if materialize:
            end = frame["event_timestamp"].max() + pd.Timedelta(seconds=1)
            start = frame["event_timestamp"].min() - pd.Timedelta(seconds=1)
            store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime())
    return repo


def _load_postgres_table(frame: pd.DataFrame, pg: dict[str, str]) -> None:
    """Replace the source table in PostgreSQL (COPY through psycopg)."""
    import psycopg

    dsn = (
        f"host={pg.get('host', '127.0.0.1')} port={pg.get('port', 5432)} "
        f"user={pg.get('user', 'postgres')} dbname={pg['database']}"
    )
    cols = list(frame.columns)
    ddl = ", ".join(
        f'"{c}" {"text" if c == "symbol" else "timestamptz" if "timestamp" in c else "double precision"}'
        for c in cols
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="", date_format="%Y-%m-%d %H:%M:%S%z")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SOURCE_TABLE}")
        conn.execute(f"CREATE TABLE {SOURCE_TABLE} ({ddl})")
        copy_sql = f"COPY {SOURCE_TABLE} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)"
        with conn.cursor().copy(copy_sql) as copy:
            copy.write(buffer.getvalue())
        conn.execute(f"CREATE INDEX ON {SOURCE_TABLE} (symbol, event_timestamp)")
        conn.execute(f"ANALYZE {SOURCE_TABLE}")


def drop_online_keys(
    repo: PriceRepo, host: str = "127.0.0.1", port: int = 6379, db: int = 0
) -> int:
    """Delete the repo project's Redis keys (Feast keys end with the project name)."""
    import redis

    client = redis.Redis(host=host, port=port, db=db)
    suffix = repo.project.encode()
    doomed = [k for k in client.scan_iter(count=10_000) if k.endswith(suffix)]
    for i in range(0, len(doomed), 1000):
        client.delete(*doomed[i : i + 1000])
    return len(doomed)
