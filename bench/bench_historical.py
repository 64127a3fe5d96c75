"""Offline store plugin vs its baselines, side by side in one run (stock Feast SDK calls only).

1. Historical retrieval: `store.get_historical_features(entity_df, feature_service).to_df()` for
   N entity rows (default 1M) x the 50 real-price features of `bench.price_repo` over
   the whole S&P 500 daily file (619k source rows, 2 views, TTL 10 days), random (symbol, time)
   entity rows (fixed seed). Three timings on the same data: a pandas `merge_asof` of the same
   join (the reference: also checks every store's values row by row), the SDK through
   `FinfeastDuckDBOfflineStore`, and the SDK through Feast's own `duckdb` store
   (`--skip-feast-duckdb` to leave it out).
2. First materialize of every daily view (`--workdir` with a built `features_daily`, default
   <repo>/var): the floor = DuckDB reading the latest row per symbol of all columns (window
   query); `store.materialize(all history, daily views)` with the plugin into a fresh registry and
   SQLite; the same with Feast's `duckdb` store and Feast's default materialization settings
   (`--skip-feast-materialize` to leave it out).

Usage: .venv/bin/python bench/bench_historical.py [--rows 1000000] [--skip-feast-duckdb]
       [--skip-materialize] [--skip-feast-materialize] [--workdir var]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.price_repo import (  # noqa: E402
    RANGE_FEATURES,
    RETURN_FEATURES,
    SERVICE,
    build_price_repo,
    load_price_features,
)

PLUGIN = "finfeast.feast_plugins.offline.FinfeastDuckDBOfflineStore"
TTL = pd.Timedelta(days=10)
FEATURES = RETURN_FEATURES + RANGE_FEATURES


def entity_rows(source: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lo, hi = source["event_timestamp"].min().value, source["event_timestamp"].max().value
    return pd.DataFrame(
        {
            "symbol": rng.choice(source["symbol"].unique(), n),
            "event_timestamp": pd.to_datetime(rng.integers(lo, hi, n), utc=True).floor("s"),
        }
    )


def merge_asof_reference(source: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """The same point-in-time join in pandas (latest row at or before t, within the TTL)."""
    left = entities.reset_index().sort_values("event_timestamp")
    right = source[["symbol", "event_timestamp", *FEATURES]].sort_values("event_timestamp")
    out = pd.merge_asof(
        left, right, on="event_timestamp", by="symbol", direction="backward", tolerance=TTL
    )
    return out.set_index("index").sort_index()


def store_with_offline(yaml_path: Path, repo_path: Path, offline: dict, **overrides):
    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    raw = yaml.safe_load(os.path.expandvars(yaml_path.read_text()))
    raw.update(overrides, offline_store=offline)
    return FeatureStore(config=RepoConfig(**raw, repo_path=repo_path))


def compare(got: pd.DataFrame, want: pd.DataFrame) -> str:
    keys = ["symbol", "event_timestamp"]
    g = got.assign(event_timestamp=pd.to_datetime(got["event_timestamp"], utc=True))
    g = g.drop_duplicates(keys).set_index(keys).sort_index()
    w = want.drop_duplicates(keys).set_index(keys).sort_index()
    common = g.index.intersection(w.index)
    a, b = g.loc[common, FEATURES].to_numpy(float), w.loc[common, FEATURES].to_numpy(float)
    both = ~np.isnan(a) & ~np.isnan(b)
    diff = float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
    nulls = int((np.isnan(a) != np.isnan(b)).sum())
    return f"{len(common):,} rows, max abs diff {diff:.1e}, {nulls} null mismatches"


def bench_historical(args, root: Path) -> list[tuple[str, float, str]]:
    source = load_price_features(args.data_dir)
    entities = entity_rows(source, args.rows)
    print(f"source {len(source):,} rows x {len(FEATURES)} features; {args.rows:,} entity rows")
    rows: list[tuple[str, float, str]] = []
    t = time.perf_counter()
    reference = merge_asof_reference(source, entities)
    rows.append(("pandas merge_asof (reference)", time.perf_counter() - t, "(reference)"))
    print(rows[-1], flush=True)
    repo = build_price_repo(
        root / "px",
        args.data_dir,
        f"hist_{uuid.uuid4().hex[:8]}",
        "sqlite",
        "duckdb",
        materialize=False,
    )
    stores = [("SDK via FinfeastDuckDBOfflineStore", {"type": PLUGIN})]
    if not args.skip_feast_duckdb:
        stores.append(("SDK via Feast DuckDB offline store", {"type": "duckdb"}))
    for label, offline in stores:
        store = store_with_offline(repo.yaml, repo.path, offline)
        service = store.get_feature_service(SERVICE)
        t = time.perf_counter()
        df = store.get_historical_features(entity_df=entities, features=service).to_df()
        rows.append((label, time.perf_counter() - t, compare(df, reference)))
        print(rows[-1], flush=True)
    return rows


def bench_materialize(args, root: Path) -> list[tuple[str, float, str]]:
    import duckdb

    from finfeast.config import load_settings
    from finfeast.feast_plugins.offline import clear_latest_cache
    from finfeast.store import apply_repo, get_store

    offline = (args.workdir / "local" / "offline").resolve()
    table = offline / "features_daily.parquet"
    if not table.exists():
        print(f"no {table}: run `finfeast ingest && finfeast features` first; skipped")
        return []
    rows: list[tuple[str, float, str]] = []
    conn = duckdb.connect()
    t = time.perf_counter()
    n = conn.sql(
        f"SELECT * FROM read_parquet('{table}') "
        "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY event_timestamp DESC) = 1"
    ).to_arrow_table()
    floor = time.perf_counter() - t
    rows.append(
        (
            "floor: DuckDB latest row per symbol, all columns",
            floor,
            f"{n.num_rows} rows x {n.num_columns} columns",
        )
    )
    conn.close()
    work = root / "mat"
    (work / "local").mkdir(parents=True)
    os.symlink(offline, work / "local" / "offline")
    settings = load_settings("local", workdir=work, project=f"mat_{uuid.uuid4().hex[:6]}")
    apply_repo(settings)
    store = get_store(settings)
    # Feast's run gets its own registry + online file, copied while still empty (tables made).
    import shutil

    shutil.copy(settings.registry_path, work / "feast_registry.db")
    shutil.copy(settings.online_path, work / "feast_online.db")
    daily = [fv.name for fv in store.list_feature_views() if fv.name.startswith("daily_")]
    start, end = datetime(1970, 1, 2, tzinfo=UTC), datetime.now(UTC)
    configs = [("feast materialize via FinfeastDuckDBOfflineStore", None)]
    if not args.skip_feast_materialize:
        configs.append(("feast materialize via Feast DuckDB store (default settings)", "duckdb"))
    for label, offline_type in configs:
        clear_latest_cache()
        if offline_type is None:
            target = store
        else:
            target = store_with_offline(
                settings.feature_store_yaml,
                settings.repo_path,
                {"type": offline_type},
                registry={"registry_type": "file", "path": str(work / "feast_registry.db")},
                online_store={"type": "sqlite", "path": str(work / "feast_online.db")},
                materialization={"pull_latest_features": False},
            )
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            target.materialize(start, end, feature_views=daily)
        secs = time.perf_counter() - t
        rows.append((label, secs, f"{len(daily)} views; {secs / floor:.2f}x the floor"))
        print(rows[-1], flush=True)
    return rows


def render(title: str, rows: list[tuple[str, float, str]], base: float) -> str:
    out = [f"| {title} | seconds | x baseline | check |", "|---|---|---|---|"]
    out += [f"| {name} | {s:.2f} | {s / base:.2f}x | {check} |" for name, s, check in rows]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-feast-duckdb", action="store_true")
    parser.add_argument("--skip-historical", action="store_true")
    parser.add_argument("--skip-materialize", action="store_true")
    parser.add_argument("--skip-feast-materialize", action="store_true")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    args.data_dir = args.data_dir or Path(
        os.environ.get("FINFEAST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
    )
    root = Path(tempfile.mkdtemp(prefix="finfeast_bench_offline_"))
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = []
    if not args.skip_historical:
        rows = bench_historical(args, root)
        text.append(
            render(f"historical, {args.rows:,} entity rows x 50 features", rows, rows[0][1])
        )
    if not args.skip_materialize:
        rows = bench_materialize(args, root)
        if rows:
            text.append(render("first materialize, all daily views", rows, rows[0][1]))
    print(
        f"\nRun {started}; 2 cores shared; 1-min load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end.\n"
    )
    print("\n\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
