"""Benchmark of the bar-only feature catalog on the 505-ticker, 5-year daily file (619k bars).

Measures, in one run on this machine:
1. the whole catalog (`compute_features`, end to end: validation, sort, kernels, frame), with
   the one-off kernel load/compile time reported apart;
2. the TA-Lib-covered features: TA-Lib itself called per symbol (the baseline, on pre-split
   arrays) against our kernels for the same features (`compute_features(families=TALIB_SUBSET)`
   end to end, and the kernels alone on pre-sorted arrays); the ratio is ours / TA-Lib's;
3. online: single-bar `OnlineFeatures.update` calls (updates/s and latency percentiles) and
   micro-batches through `update_many` (bar-updates/s), replaying the file in time order;
4. state bytes per symbol.

Run: `.venv/bin/python bench/bench_features.py [--quick]` (data from FINFEAST_DATA_DIR or
../shared/data). Figures are medians of repeated runs; compare ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# Families holding every TA-Lib-defined feature (plus cheap extras such as ret_N, px ratios, CLV).
TALIB_SUBSET = ("returns", "trend", "oscillators", "volatility", "volume")


def data_dir() -> Path:
    raw = os.environ.get("FINFEAST_DATA_DIR")
    return Path(raw) if raw else REPO.parent / "shared" / "data"


def load_bars() -> tuple[pd.DataFrame, int]:
    raw = pd.read_csv(data_dir() / "daily" / "all_stocks_5yr.csv.gz")
    usable = raw.dropna(subset=["open", "high", "low", "close", "volume"])
    close_ny = pd.to_datetime(usable["date"]) + pd.Timedelta(hours=16)
    bars = pd.DataFrame(
        {
            "symbol": usable["Name"].to_numpy(),
            "event_timestamp": close_ny.dt.tz_localize("America/New_York")
            .dt.tz_convert("UTC")
            .to_numpy(),
            **{c: usable[c].astype("float64").to_numpy() for c in ("open", "high", "low", "close")},
            "volume": usable["volume"].astype("float64").to_numpy(),
        }
    )
    return bars, len(raw) - len(usable)


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def talib_subset(groups: list[tuple[np.ndarray, ...]]) -> int:
    """TA-Lib for every catalog feature it defines, per symbol, parameters explicit."""
    import talib

    calls = 0
    for _o, h, low, c, v in groups:
        for n in (5, 10, 20, 50, 200):
            talib.SMA(c, timeperiod=n)
        for n in (5, 10, 12, 20, 26, 50, 200):
            talib.EMA(c, timeperiod=n)
        talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
        for n in (7, 14, 21):
            talib.RSI(c, timeperiod=n)
        talib.STOCH(
            h,
            low,
            c,
            fastk_period=14,
            slowk_period=3,
            slowk_matype=0,
            slowd_period=3,
            slowd_matype=0,
        )
        talib.STOCHF(h, low, c, fastk_period=14, fastd_period=1, fastd_matype=0)
        talib.WILLR(h, low, c, timeperiod=14)
        for n in (14, 20):
            talib.CCI(h, low, c, timeperiod=n)
        talib.MFI(h, low, c, v, timeperiod=14)
        talib.TRANGE(h, low, c)
        for n in (10, 14):
            talib.ATR(h, low, c, timeperiod=n)
        talib.NATR(h, low, c, timeperiod=14)
        talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
        talib.OBV(c, v)
        talib.AD(h, low, c, v)
        talib.ADOSC(h, low, c, v, fastperiod=3, slowperiod=10)
        for n in (10, 20):
            talib.ROC(c, timeperiod=n)
            talib.MOM(c, timeperiod=n)
        calls += 42
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else 5

    bars, dropped = load_bars()
    n_rows, n_symbols = len(bars), bars["symbol"].nunique()
    print(
        f"machine: {os.cpu_count()} cores; bars: {n_rows:,} rows, {n_symbols} symbols "
        f"({dropped} rows with null fields dropped, as ingestion quarantines them)"
    )

    t0 = time.perf_counter()
    from transforms import OnlineFeatures, catalog, compute_features
    from transforms.engine import N_FLOAT, NO_TIME, STATE_SLOTS, family_mask, run_rows

    compute_features(bars.head(3000))
    warm = OnlineFeatures()
    warm.update_many(bars.head(600))
    warm.update(bars.iloc[700].to_dict())
    print(f"kernel load/compile (once per process): {time.perf_counter() - t0:.2f} s")

    # 1. whole catalog
    n_feats = len(catalog.bar_features())
    full = timed(lambda: compute_features(bars), repeat)
    print(
        f"\n[catalog] {n_feats} bar features, end to end: median {statistics.median(full):.2f} s, "
        f"best {min(full):.2f} s ({n_rows / statistics.median(full):,.0f} bars/s); target < 10 s"
    )

    # 2. TA-Lib subset
    ordered = bars.sort_values(["symbol", "event_timestamp"], kind="stable")
    groups = [
        tuple(g[c].to_numpy() for c in ("open", "high", "low", "close", "volume"))
        for _, g in ordered.groupby("symbol", sort=True)
    ]
    talib_times = timed(lambda: talib_subset(groups), repeat)
    talib_feats = sorted(f.name for f in catalog.bar_features() if "TA-Lib" in f.convention)
    subset = [f for f in TALIB_SUBSET if f in catalog.FAMILIES]
    ours_e2e = timed(lambda: compute_features(bars, families=subset), repeat)
    codes = pd.factorize(ordered["symbol"], sort=True)[0].astype(np.int64)
    ts = ordered["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    arrays = [ordered[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    session = np.zeros(n_rows, dtype=np.int64)
    out = np.empty((n_rows, N_FLOAT))

    def kernels(mask: np.ndarray) -> None:
        state = np.zeros((n_symbols, STATE_SLOTS))
        last = np.full(n_symbols, NO_TIME, dtype=np.int64)
        run_rows(state, last, codes, ts, *arrays, session, out, mask)

    # Interleave TA-Lib and our kernels so both see the same machine load; the ratio is the
    # median of the per-pair ratios.
    mask = family_mask(subset)
    pairs = [
        (timed(lambda: talib_subset(groups), 1)[0], timed(lambda: kernels(mask), 1)[0])
        for _ in range(2 * repeat + 1)
    ]
    ratios = [ours / theirs for theirs, ours in pairs]
    all_kernel = timed(lambda: kernels(family_mask()), repeat)
    n_subset = sum(len(catalog.FAMILIES[f].features) for f in subset)
    tl = statistics.median(talib_times + [p[0] for p in pairs])
    ok = statistics.median(p[1] for p in pairs)
    print(
        f"\n[TA-Lib subset] {len(talib_feats)} TA-Lib-defined features; TA-Lib per symbol "
        f"(42 calls x {n_symbols}): median {tl:.3f} s"
    )
    print(f"  ours, families {subset} ({n_subset} features incl. the TA-Lib ones):")
    print(
        f"    kernels only: median {ok:.3f} s; ours/TA-Lib over {len(pairs)} interleaved pairs: "
        f"median {statistics.median(ratios):.2f}x, best {min(ratios):.2f}x (target <= 1.5x)"
    )
    print(
        f"    end to end  : median {statistics.median(ours_e2e):.3f} s "
        f"-> {statistics.median(ours_e2e) / tl:.2f}x TA-Lib"
    )
    print(f"  all float kernels ({N_FLOAT} features): median {statistics.median(all_kernel):.3f} s")

    # 3. online
    stream = bars.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
    n_single = 60_000 if not args.quick else 20_000
    records = stream.head(n_single).to_dict("records")
    online = OnlineFeatures()
    lat = np.empty(len(records))
    t_start = time.perf_counter()
    for k, bar in enumerate(records):
        t0 = time.perf_counter_ns()
        online.update(bar)
        lat[k] = time.perf_counter_ns() - t0
    single = time.perf_counter() - t_start
    p50, p99, p999 = np.percentile(lat, [50, 99, 99.9]) / 1000
    print(
        f"\n[online single] {len(records):,} updates: {len(records) / single:,.0f} updates/s "
        f"(target >= 20,000); latency p50 {p50:.1f} us, p99 {p99:.1f} us, p99.9 {p999:.1f} us"
    )

    for per_batch in (n_symbols, 5 * n_symbols):
        online = OnlineFeatures()
        chunks = [stream.iloc[i : i + per_batch] for i in range(0, len(stream), per_batch)]
        t0 = time.perf_counter()
        for chunk in chunks:
            online.update_many(chunk)
        dt = time.perf_counter() - t0
        print(
            f"[online micro-batch] {per_batch} bars/batch: {len(stream) / dt:,.0f} bar-updates/s "
            f"(target >= 200,000), {dt / len(chunks) * 1000:.2f} ms/batch"
        )

    arrays_in = [
        (
            c["symbol"].to_numpy(),
            c["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64),
            *(c[col].to_numpy() for col in ("open", "high", "low", "close", "volume")),
        )
        for c in (stream.iloc[i : i + n_symbols] for i in range(0, len(stream), n_symbols))
    ]
    online = OnlineFeatures()
    t0 = time.perf_counter()
    for args_ in arrays_in:
        online.update_arrays(*args_)
    dt = time.perf_counter() - t0
    print(
        f"[online micro-batch, arrays] {n_symbols} bars/batch via update_arrays: "
        f"{len(stream) / dt:,.0f} bar-updates/s, {dt / len(arrays_in) * 1000:.2f} ms/batch"
    )

    print(
        f"\n[state] {online.state_bytes()} bytes per symbol ({STATE_SLOTS} float64 slots + last "
        f"event time); {n_symbols} symbols = {online.state_bytes() * n_symbols / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
