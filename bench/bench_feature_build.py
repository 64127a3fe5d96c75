"""Benchmark of `finfeast features`: canonical tables -> features_daily + labels_daily.

Measures, in one run on this machine, on the full real data (all_stocks_5yr: 505 tickers x 5 years,
plus ^GSPC/^IXIC from arch, VIX/WTI/Brent, ECB FX and listings, loaded by the real ingestion):
1. `build_feature_tables(settings)` (local engine): seconds per step, median of `--repeats` runs;
2. the market-context family against a straightforward pandas baseline computing the same
   columns (groupby-rolling cov/var for beta, `merge_asof` per macro/FX series) in the same run:
   seconds and ratio ours / baseline, and the largest difference between the two (must be ~0);
3. labels against a pandas `groupby().shift(-h)` baseline;
4. the Dask engine (`--engine dask`, LocalCluster with 2 worker processes): cluster start and the
   partitioned compute, against the single-process compute of the same run.

Run: `.venv/bin/python bench/bench_feature_build.py [--repeats 3] [--skip-dask]` (data from
FINFEAST_DATA_DIR or ../shared/data; a temporary workdir). Machine is shared: compare ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

SOURCES = ["stocks_5yr", "arch_indices", "vix_oil", "fx", "listings"]


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def pandas_context_baseline(bars: pd.DataFrame, ctx) -> pd.DataFrame:  # noqa: ANN001
    """The same beta/corr and macro/FX columns the obvious pandas way (the baseline)."""
    from transforms.context import BETA_WINDOW, MACRO_TOLERANCE

    b = bars[["symbol", "event_timestamp", "close"]].sort_values(["symbol", "event_timestamp"])
    b = b.reset_index(drop=True)
    b["r"] = b.groupby("symbol")["close"].pct_change(fill_method=None)
    b = b.merge(
        ctx.index_returns[["event_timestamp", "spx_ret_1"]], on="event_timestamp", how="left"
    )
    roll = b.groupby("symbol")[["r", "spx_ret_1"]].rolling(BETA_WINDOW, min_periods=BETA_WINDOW)
    cov = roll.cov().xs("r", level=2)["spx_ret_1"].to_numpy()
    var = roll.var()["spx_ret_1"].to_numpy()
    out = b[["symbol", "event_timestamp"]].copy()
    out["beta_spx_60"] = cov / var
    ordered = b[["event_timestamp"]].reset_index().sort_values("event_timestamp")
    for frame in ctx.series.values():
        right = frame.copy()
        right["event_timestamp"] = right["event_timestamp"].astype(ordered["event_timestamp"].dtype)
        joined = (
            pd.merge_asof(
                ordered,
                right,
                on="event_timestamp",
                direction="backward",
                tolerance=MACRO_TOLERANCE,
            )
            .set_index("index")
            .sort_index()
        )
        for col in frame.columns.drop("event_timestamp"):
            out[col] = joined[col].to_numpy()
    return out


def pandas_labels_baseline(bars: pd.DataFrame) -> pd.DataFrame:
    b = bars[["symbol", "event_timestamp", "close"]].sort_values(["symbol", "event_timestamp"])
    g = b.groupby("symbol")
    out = b[["symbol", "event_timestamp"]].copy()
    for h in (1, 5, 20):
        out[f"fwd_ret_{h}"] = g["close"].shift(-h) / b["close"] - 1.0
        out[f"label_available_at_{h}"] = g["event_timestamp"].shift(-h)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()

    from finfeast.config import load_settings
    from finfeast.offline import open_tables
    from ingestion import run_ingest
    from transforms import compute_features
    from transforms.build import build_feature_tables, read_bars, read_context_tables
    from transforms.context import context_features, prepare_context
    from transforms.labels import compute_labels

    logger.remove()  # keep the printed figures readable
    logger.add(sys.stderr, level="WARNING")

    workdir = Path(tempfile.mkdtemp(prefix="bench_feature_build_"))
    settings = load_settings(workdir=workdir)
    t0 = time.perf_counter()
    run_ingest(settings, sources=SOURCES, progress=False)
    print(f"setup: ingest {', '.join(SOURCES)} in {time.perf_counter() - t0:.1f}s ({workdir})")
    tables = open_tables(settings)
    bars, ctx_tables = read_bars(tables), read_context_tables(tables)
    print(
        f"input: {len(bars):,} bars, {bars['symbol'].nunique()} symbols; "
        f"macro {len(ctx_tables['macro']):,}, fx_rates {len(ctx_tables['fx_rates']):,} rows"
    )
    compute_features(bars.head(5000))  # load the compiled kernels once (reported by bench_features)

    # 1. the whole build
    runs = []
    for _ in range(args.repeats):
        runs.append(build_feature_tables(settings).seconds)
    steps = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\n1. build_feature_tables, local engine (median of {args.repeats}):")
    for k, v in steps.items():
        print(f"   {k:<18} {v:7.2f} s")
    print(f"   {'total':<18} {sum(steps.values()):7.2f} s")

    # 2. context family against the pandas baseline
    t_prep, ctx = _timed(
        lambda: prepare_context(
            bars, ctx_tables["macro"], ctx_tables["fx_rates"], ctx_tables["listings"]
        ),
        args.repeats,
    )
    t_ours, ours = _timed(lambda: context_features(bars, ctx), args.repeats)
    t_base, base = _timed(lambda: pandas_context_baseline(bars, ctx), max(1, args.repeats - 1))
    cols = [c for c in base.columns if c not in ("symbol", "event_timestamp")]
    diff = max(
        float(
            np.nanmax(
                np.abs(ours[c].to_numpy() - base[c].to_numpy())
                / np.maximum(1.0, np.abs(base[c].to_numpy()))
            )
        )
        for c in cols
    )
    print("\n2. market-context family (17 features):")
    print(f"   prepare (index/sector/macro inputs) {t_prep:7.2f} s")
    print(f"   ours: join + rolling beta/corr      {t_ours:7.2f} s")
    print(f"   pandas baseline ({len(cols)} of the columns) {t_base:7.2f} s")
    print(
        f"   ratio ours / baseline               {t_ours / t_base:7.3f}   (max rel diff {diff:.1e})"
    )

    # 3. labels against pandas
    t_lab, _ = _timed(lambda: compute_labels(bars), args.repeats)
    t_lab_base, _ = _timed(lambda: pandas_labels_baseline(bars), args.repeats)
    print("\n3. labels (3 horizons, returns + directions + availability):")
    print(
        f"   ours {t_lab:.2f} s, pandas groupby-shift baseline {t_lab_base:.2f} s, "
        f"ratio {t_lab / t_lab_base:.2f}"
    )

    # 4. Dask engine
    if not args.skip_dask:
        from transforms.build import compute_all_features
        from transforms.dask_engine import compute_partitioned, dask_client

        t_local, _ = _timed(lambda: compute_all_features(bars, ctx_tables), 2)
        t0 = time.perf_counter()
        with dask_client(n_workers=2) as client:
            t_start = time.perf_counter() - t0
            compute_partitioned(bars.head(20_000), ctx, client=client)  # workers load kernels
            address = client.scheduler.address
            t_dask, _ = _timed(
                lambda: compute_all_features(bars, ctx_tables, "dask", dask_address=address), 2
            )
        print("\n4. Dask engine, LocalCluster 2 worker processes x 1 thread (bar + context):")
        print(
            f"   cluster start {t_start:.2f} s; dask {t_dask:.2f} s; single process "
            f"{t_local:.2f} s; ratio dask / local {t_dask / t_local:.2f}"
        )


if __name__ == "__main__":
    main()
