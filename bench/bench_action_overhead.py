#!/usr/bin/env python
"""Same-run comparison: the engine loop with the corporate-action test vs. the same loop without it
(the pre-change run_rows body), on all_stocks_5yr, all families, interleaved runs."""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numba import njit

from transforms.adjustments import no_actions
from transforms.engine import N_FLOAT, NO_TIME, STATE_SLOTS, _b, family_mask, run_rows
from transforms.families import (
    interactions,
    oscillators,
    realized_vol,
    returns,
    rolling_stats,
    trend,
    volatility,
    volume,
    volume_stats,
)


@njit(cache=False)
def old_rows(state, last_ts, sym, ts, o, h, low, c, v, session, out, enabled):
    accepted = np.zeros(sym.size, dtype=np.bool_)
    for r in range(sym.size):
        i = sym[r]
        if ts[r] <= last_ts[i]:
            continue
        last_ts[i] = ts[r]
        or_, hr, lr, cr, vr, dr = o[r], h[r], low[r], c[r], v[r], session[r]
        if enabled[0]:
            returns.step(state[i, _b[0] : _b[1]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[1]:
            trend.step(state[i, _b[1] : _b[2]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[2]:
            oscillators.step(state[i, _b[2] : _b[3]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[3]:
            volatility.step(state[i, _b[3] : _b[4]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[4]:
            realized_vol.step(state[i, _b[4] : _b[5]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[5]:
            volume.step(state[i, _b[5] : _b[6]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[6]:
            volume_stats.step(state[i, _b[6] : _b[7]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[7]:
            rolling_stats.step(state[i, _b[7] : _b[8]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[8]:
            interactions.step(state[i, _b[8] : _b[9]], or_, hr, lr, cr, vr, dr, out[r])
        accepted[r] = True
    return accepted


def main() -> None:
    from bench_features import load_bars

    bars, _ = load_bars()
    ordered = bars.sort_values(["symbol", "event_timestamp"], kind="stable")
    codes = pd.factorize(ordered["symbol"], sort=True)[0].astype(np.int64)
    ts = ordered["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    arrays = [ordered[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    n, ns = len(codes), int(codes.max()) + 1
    session = np.zeros(n, dtype=np.int64)
    subset = ["returns", "trend", "oscillators", "volatility", "volume"]
    for label, mask in (("TA-Lib subset", family_mask(subset)), ("all families", family_mask())):
        out_new = np.full((n, N_FLOAT), np.nan)
        out_old = np.full((n, N_FLOAT), np.nan)

        def new(out: np.ndarray = out_new, mask: np.ndarray = mask) -> None:
            st = np.zeros((ns, STATE_SLOTS))
            last = np.full(ns, NO_TIME, np.int64)
            run_rows(st, last, codes, ts, *arrays, session, out, mask, *no_actions(ns).args())

        def old(out: np.ndarray = out_old, mask: np.ndarray = mask) -> None:
            st = np.zeros((ns, STATE_SLOTS))
            last = np.full(ns, NO_TIME, np.int64)
            old_rows(st, last, codes, ts, *arrays, session, out, mask)

        new()
        old()
        assert np.array_equal(out_new, out_old, equal_nan=True), "outputs differ"
        t_old, t_new, ratios = [], [], []
        for _ in range(7):
            t0 = time.perf_counter()
            old()
            t1 = time.perf_counter()
            new()
            t2 = time.perf_counter()
            t_old.append(t1 - t0)
            t_new.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        print(
            f"{label}: without the action test median {statistics.median(t_old):.3f} s, with it "
            f"{statistics.median(t_new):.3f} s, per-run ratio median {statistics.median(ratios):.3f}"
            f" (min {min(ratios):.3f}, max {max(ratios):.3f}); outputs bit-identical"
        )


if __name__ == "__main__":
    main()
