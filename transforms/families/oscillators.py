"""Oscillators: RSI (Wilder), stochastics, Williams %R, CCI, MFI, all in TA-Lib's definitions.

State: previous close, two Wilder smoothers per RSI, rings of the last 14 highs/lows, of fast and
slow %K (3 each), of typical prices (20) and of MFI's positive/negative money flows (14), plus
MFI's running sums. A window without any movement gives the neutral value (50, or -50 for %R)
where TA-Lib would print 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    NONE,
    PRICE,
    PRICE_VOLUME,
    SPLIT,
    Layout,
    column,
    ring_abs_dev,
    ring_lag,
    ring_max,
    ring_min,
    ring_push,
    ring_sum,
    ta_sma,
    track_max,
    track_min,
    wilder,
)

RSI_N = np.array(cat.RSI_WINDOWS, dtype=np.int64)
FASTK, SLOWK, SLOWD = cat.STOCH
WILLR_N = cat.WILLR_WINDOW
CCI_N = np.array(cat.CCI_WINDOWS, dtype=np.int64)
MFI_N = cat.MFI_WINDOW
HL_CAP = max(FASTK, WILLR_N)
# A typical-price change below this fraction of the price is rounding noise of (h+l+c)/3 (e.g.
# 4.34+4.13+4.17 vs 4.35+4.11+4.18, equal in decimal) and counts as unchanged, as in TA-Lib.
TP_NOISE = 1e-12
TP_CAP = max(cat.CCI_WINDOWS)

O_RSI = column([f"rsi_{n}" for n in cat.RSI_WINDOWS])
O_FASTK, O_SLOWK, O_SLOWD, O_WILLR = column(
    [
        f"stoch_fastk_{FASTK}",
        f"stoch_k_{FASTK}_{SLOWK}",
        f"stoch_d_{FASTK}_{SLOWK}",
        f"willr_{WILLR_N}",
    ]
)
O_CCI = column([f"cci_{n}" for n in cat.CCI_WINDOWS])
O_MFI = column([f"mfi_{MFI_N}"])[0]

STATE = Layout(SPLIT)  # oscillators of split-adjusted prices (as charting tools show them)
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)
RSI_GAIN = STATE.smoothers(RSI_N.size, PRICE)
RSI_LOSS = STATE.smoothers(RSI_N.size, PRICE)
HIGHS = STATE.ring(HL_CAP, PRICE)
LOWS = STATE.ring(HL_CAP, PRICE)
HI_TRACK = STATE.scalar(PRICE)  # [max of the last FASTK highs, its age]: see track_max
STATE.scalar(NONE)
LO_TRACK = STATE.scalar(PRICE)
STATE.scalar(NONE)
FASTK_RING = STATE.ring(SLOWK, NONE)  # %K values are ratios
SLOWK_SMA = STATE.smoother(NONE)
SLOWK_RING = STATE.ring(SLOWD, NONE)
SLOWD_SMA = STATE.smoother(NONE)
TPS = STATE.ring(TP_CAP, PRICE)
PREV_TP = STATE.scalar(PRICE)
MF_POS = STATE.ring(MFI_N, PRICE_VOLUME)  # money flows: invariant under a split
MF_NEG = STATE.ring(MFI_N, PRICE_VOLUME)
MF_SUMS = STATE.scalar(PRICE_VOLUME, 2)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]

    # RSI (Wilder) on close-to-close changes
    for j in range(RSI_N.size):
        out[O_RSI[j]] = NAN
    if k >= 2:
        diff = c - s[PREV_CLOSE]
        gain = diff if diff > 0.0 else 0.0
        loss = -diff if diff < 0.0 else 0.0
        for j in range(RSI_N.size):
            avg_gain = wilder(s, RSI_GAIN + 2 * j, RSI_N[j], gain)
            avg_loss = wilder(s, RSI_LOSS + 2 * j, RSI_N[j], loss)
            if not np.isnan(avg_gain):
                total = avg_gain + avg_loss
                out[O_RSI[j]] = 100.0 * (avg_gain / total) if total != 0.0 else 50.0
    s[PREV_CLOSE] = c

    # Stochastics and Williams %R over the high/low rings
    ring_push(s, HIGHS, HL_CAP, h)
    ring_push(s, LOWS, HL_CAP, low)
    hi_k = track_max(s, HI_TRACK, HIGHS, HL_CAP, FASTK, h)
    lo_k = track_min(s, LO_TRACK, LOWS, HL_CAP, FASTK, low)
    out[O_FASTK] = NAN
    out[O_SLOWK] = NAN
    out[O_SLOWD] = NAN
    if k >= FASTK:
        lo = lo_k
        diff = (hi_k - lo) / 100.0  # TA-Lib's STOCH arithmetic
        fastk = (c - lo) / diff if diff != 0.0 else 50.0
        out[O_FASTK] = fastk
        ring_push(s, FASTK_RING, SLOWK, fastk)
        nk = s[SLOWK_SMA] + 1.0
        leaving = ring_lag(s, FASTK_RING, SLOWK, SLOWK - 1) if nk >= SLOWK else 0.0
        slowk = ta_sma(s, SLOWK_SMA, SLOWK, fastk, leaving)
        if not np.isnan(slowk):
            ring_push(s, SLOWK_RING, SLOWD, slowk)
            nd = s[SLOWD_SMA] + 1.0
            leaving = ring_lag(s, SLOWK_RING, SLOWD, SLOWD - 1) if nd >= SLOWD else 0.0
            slowd = ta_sma(s, SLOWD_SMA, SLOWD, slowk, leaving)
            if not np.isnan(slowd):
                out[O_SLOWK] = slowk
                out[O_SLOWD] = slowd
    if k >= WILLR_N:
        if WILLR_N == FASTK:  # same window: reuse the extremes (a compile-time constant test)
            lo, hi = lo_k, hi_k
        else:
            lo = ring_min(s, LOWS, HL_CAP, WILLR_N)
            hi = ring_max(s, HIGHS, HL_CAP, WILLR_N)
        diff = (hi - lo) / (-100.0)
        out[O_WILLR] = (hi - c) / diff if diff != 0.0 else -50.0
    else:
        out[O_WILLR] = NAN

    # CCI over typical prices
    tp = (h + low + c) / 3.0
    ring_push(s, TPS, TP_CAP, tp)
    for j in range(CCI_N.size):
        n = CCI_N[j]
        if k < n:
            out[O_CCI[j]] = NAN
            continue
        avg = ring_sum(s, TPS, TP_CAP, n) / n
        dev = ring_abs_dev(s, TPS, TP_CAP, n, avg)
        dist = tp - avg
        out[O_CCI[j]] = dist / (0.015 * (dev / n)) if dist != 0.0 and dev != 0.0 else 0.0

    # MFI: running sums of signed raw money flow, oldest flow removed before the new one is added
    out[O_MFI] = NAN
    if k >= 2:
        if s[MF_POS] >= MFI_N:  # ring full: drop the flow leaving the window
            s[MF_SUMS] -= ring_lag(s, MF_POS, MFI_N, MFI_N - 1)
            s[MF_SUMS + 1] -= ring_lag(s, MF_NEG, MFI_N, MFI_N - 1)
        change = tp - s[PREV_TP]
        flow = tp * v
        noise = TP_NOISE * tp
        pos = flow if change > noise else 0.0
        neg = flow if change < -noise else 0.0
        ring_push(s, MF_POS, MFI_N, pos)
        ring_push(s, MF_NEG, MFI_N, neg)
        s[MF_SUMS] += pos
        s[MF_SUMS + 1] += neg
        if s[MF_POS] >= MFI_N:
            total = s[MF_SUMS] + s[MF_SUMS + 1]
            out[O_MFI] = 100.0 * (s[MF_SUMS] / total) if total != 0.0 else 50.0
    s[PREV_TP] = tp
