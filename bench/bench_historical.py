"""Historical retrieval: point-in-time join of N entity rows x 50 features, per offline store.

Data: the 50 real-price features of bench.price_repo over the whole S&P 500 daily file
(619k source rows, 505 symbols, 2013-2018). Entity rows: random (symbol, time) pairs over that
span (fixed seed), so each row needs an as-of lookup within the views' 10-day TTL.

Measured per offline store: `get_historical_features(entity_df, feature_service).to_df()` wall
time, and the lean `finfeast.serving.historical.get_historical_features_asof` (pandas merge_asof
or DuckDB ASOF JOIN engines, same results as Feast: tests/serving/test_historical.py). DuckDB runs the full N (default 1M);
PostgreSQL and the file/Dask store run a smaller N (default 50k / 2k: Feast's Dask join
materializes entity rows x source rows per key, about 1 GB per 1k entity rows here) and their 1M
figure is a linear extrapolation, labelled as such. A pandas `merge_asof` of the same join is the
in-process reference: it checks every store's values row by row and gives a floor to compare.

Usage: .venv/bin/python bench/bench_historical.py [--quick] [--rows 1000000] [--pg-rows 50000]
       [--file-rows 2000] [--skip-postgres] [--skip-file] [--skip-feast-duckdb]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from finfeast.serving.historical import get_historical_features_asof  # noqa: E402
from bench.price_repo import (  # noqa: E402
    RANGE_FEATURES,
    RETURN_FEATURES,
    SERVICE,
    build_price_repo,
    load_price_features,
)

TTL = pd.Timedelta(days=10)
FEATURES = RETURN_FEATURES + RANGE_FEATURES


def entity_rows(source: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    symbols = source["symbol"].unique()
    lo = source["event_timestamp"].min().value
    hi = source["event_timestamp"].max().value
    return pd.DataFrame(
        {
            "symbol": rng.choice(symbols, n),
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


def time_store(repo, entities: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    store = repo.store()
    service = store.get_feature_service(SERVICE)
    t = time.perf_counter()
    df = store.get_historical_features(entity_df=entities, features=service).to_df()
    return time.perf_counter() - t, df


def compare(got: pd.DataFrame, want: pd.DataFrame) -> dict[str, float]:
    """Max abs difference and null mismatches after aligning on (symbol, event_timestamp)."""
    keys = ["symbol", "event_timestamp"]
    g = got.assign(event_timestamp=pd.to_datetime(got["event_timestamp"], utc=True))
    g = g.drop_duplicates(keys).set_index(keys).sort_index()
    w = want.drop_duplicates(keys).set_index(keys).sort_index()
    common = g.index.intersection(w.index)
    a = g.loc[common, FEATURES].to_numpy(dtype=float)
    b = w.loc[common, FEATURES].to_numpy(dtype=float)
    null_mismatch = int((np.isnan(a) != np.isnan(b)).sum())
    both = ~np.isnan(a) & ~np.isnan(b)
    return {
        "rows_compared": len(common),
        "max_abs_diff": float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0,
        "null_mismatches": null_mismatch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k / 10k / 5k rows")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--pg-rows", type=int, default=None)
    parser.add_argument("--file-rows", type=int, default=None)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-file", action="store_true")
    parser.add_argument("--skip-feast-duckdb", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n_duck = args.rows or (100_000 if args.quick else 1_000_000)
    n_pg = args.pg_rows or (10_000 if args.quick else 50_000)
    n_file = args.file_rows or (1_000 if args.quick else 2_000)
    data_dir = args.data_dir or Path(
        os.environ.get("FINFEAST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
    )
    root = Path(tempfile.mkdtemp(prefix="finfeast_bench_hist_"))
    tag = uuid.uuid4().hex[:8]
    source = load_price_features(data_dir)
    entities = entity_rows(source, n_duck)
    print(f"source {len(source)} rows x {len(FEATURES)} features; entity rows {n_duck}", flush=True)
    results: dict[str, dict] = {}

    t = time.perf_counter()
    reference = merge_asof_reference(source, entities)
    results["pandas merge_asof (reference)"] = {"rows": n_duck, "seconds": time.perf_counter() - t}

    duck = build_price_repo(
        root / "duckdb", data_dir, f"hist_{tag}", "sqlite", "duckdb", materialize=False
    )
    for engine in ("pandas", "duckdb"):
        t = time.perf_counter()
        df = get_historical_features_asof(duck.store(), entities, SERVICE, engine=engine)
        results[f"finfeast as-of join, engine={engine} (Parquet)"] = {
            "rows": n_duck,
            "seconds": time.perf_counter() - t,
            **compare(df, reference),
        }
        print(results, flush=True)
    if not args.skip_feast_duckdb:
        secs, df = time_store(duck, entities)
        results["Feast DuckDB offline store (Parquet)"] = {
            "rows": n_duck,
            "seconds": secs,
            **compare(df, reference),
        }
        print(results, flush=True)

    if not args.skip_file:
        file_repo = build_price_repo(
            root / "file", data_dir, f"histf_{tag}", "sqlite", "file", materialize=False
        )
        sub = entities.iloc[:n_file]
        secs, df = time_store(file_repo, sub)
        results["Feast file offline store (Dask, Parquet)"] = {
            "rows": n_file,
            "seconds": secs,
            **compare(df, reference.iloc[:n_file]),
        }
        print(results, flush=True)

    if not args.skip_postgres:
        import psycopg

        db = f"finfeast_bench_{tag}"
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        try:
            pg = {
                "host": "127.0.0.1",
                "port": "5432",
                "database": db,
                "db_schema": "public",
                "user": "postgres",
                "password": '""',
                "sslmode": "disable",
            }
            pg_repo = build_price_repo(
                root / "pg",
                data_dir,
                f"histp_{tag}",
                "sqlite",
                "postgres",
                pg=pg,
                materialize=False,
            )
            sub = entities.iloc[:n_pg]
            secs, df = time_store(pg_repo, sub)
            results["Feast PostgreSQL offline store"] = {
                "rows": n_pg,
                "seconds": secs,
                **compare(df, reference.iloc[:n_pg]),
            }
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(render_markdown(results, n_duck))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def render_markdown(results: dict[str, dict], target_rows: int) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: 2 cores, 24 GiB; "
        f"{len(FEATURES)} features (2 views, TTL 10 days), 619k source rows (real S&P 500 daily); "
        "random (symbol, time) entity rows, fixed seed.",
        f" 1-min load average at the end: {os.getloadavg()[0]:.1f} (the 2 cores are shared).",
        "",
        f"| offline store | entity rows measured | seconds | rows/s | seconds for {target_rows:,} rows | "
        "check vs pandas merge_asof |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        per_row = r["seconds"] / r["rows"]
        scaled = r["seconds"] if r["rows"] == target_rows else per_row * target_rows
        label = f"{scaled:.1f}" + ("" if r["rows"] == target_rows else " (extrapolated, linear)")
        check = (
            f"{r['rows_compared']:,} rows, max abs diff {r['max_abs_diff']:.1e}, "
            f"{r['null_mismatches']} null mismatches"
            if "rows_compared" in r
            else "(reference)"
        )
        lines.append(
            f"| {name} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{label} | {check} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
