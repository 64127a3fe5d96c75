"""Volatility: true range, ATR/NATR (Wilder), Bollinger bands (TA-Lib), Keltner channels, bar range.

State: previous close, Wilder smoothers per ATR, a ring of the last 20 closes with Bollinger's
running sums, and the Keltner EMA. O(1) per bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    NONE,
    PRICE,
    PRICE2,
    SPLIT,
    Layout,
    column,
    ratio,
    ring_lag,
    ring_push,
    ta_ema,
    ta_sma,
    wilder,
)

ATR_N = np.array(cat.ATR_WINDOWS, dtype=np.int64)
NATR_J = cat.ATR_WINDOWS.index(cat.NATR_WINDOW)
BB_N, BB_K = cat.BBANDS
KC_EMA, KC_ATR, KC_K = cat.KELTNER
KC_ATR_J = cat.ATR_WINDOWS.index(KC_ATR)

O_TRANGE = column(["trange"])[0]
O_ATR = column([f"atr_{n}" for n in cat.ATR_WINDOWS])
O_NATR = column([f"natr_{cat.NATR_WINDOW}"])[0]
O_BB_UP, O_BB_MID, O_BB_LO, O_BB_PCTB, O_BB_WIDTH = column(
    [f"bb_{p}_{BB_N}_{BB_K}" for p in ("upper", "middle", "lower", "pctb", "width")]
)
O_KC_UP, O_KC_LO, O_KC_PCTB = column(
    [f"kc_{p}_{KC_EMA}_{KC_K}" for p in ("upper", "lower", "pctb")]
)
O_HL = column(["hl_range"])[0]

STATE = Layout(SPLIT)  # level features: split-adjusted prices
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)
ATR_S = STATE.smoothers(ATR_N.size, PRICE)
CLOSES = STATE.ring(BB_N, PRICE)
BB_SUM = STATE.smoother(PRICE)
BB_SUMSQ = STATE.smoother(PRICE2)  # running sum of squared closes
KC_EMA_S = STATE.smoother(PRICE)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]

    # true range and Wilder ATRs (from the second bar: TR needs the previous close)
    tr = NAN
    if k >= 2:
        pc = s[PREV_CLOSE]
        tr = h - low
        if abs(pc - h) > tr:
            tr = abs(pc - h)
        if abs(low - pc) > tr:
            tr = abs(low - pc)
    out[O_TRANGE] = tr
    for j in range(ATR_N.size):
        out[O_ATR[j]] = wilder(s, ATR_S + 2 * j, ATR_N[j], tr) if k >= 2 else NAN
    out[O_NATR] = (out[O_ATR[NATR_J]] / c) * 100.0
    s[PREV_CLOSE] = c

    # Bollinger bands: TA-Lib's running sums of x and x^2, population variance
    ring_push(s, CLOSES, BB_N, c)
    full = k >= BB_N
    leaving = ring_lag(s, CLOSES, BB_N, BB_N - 1) if full else 0.0
    mid = ta_sma(s, BB_SUM, BB_N, c, leaving)
    mean_sq = ta_sma(s, BB_SUMSQ, BB_N, c * c, leaving * leaving)
    if full:
        var = mean_sq - mid * mid
        dev = math.sqrt(var) * BB_K if var > 0.0 else 0.0
        upper = mid + dev
        lower = mid - dev
        out[O_BB_UP] = upper
        out[O_BB_MID] = mid
        out[O_BB_LO] = lower
        out[O_BB_PCTB] = ratio(c - lower, upper - lower)
        out[O_BB_WIDTH] = ratio(upper - lower, mid)
    else:
        out[O_BB_UP] = NAN
        out[O_BB_MID] = NAN
        out[O_BB_LO] = NAN
        out[O_BB_PCTB] = NAN
        out[O_BB_WIDTH] = NAN

    # Keltner channels: EMA of close +/- KC_K * Wilder ATR
    kc_mid = ta_ema(s, KC_EMA_S, KC_EMA, c)
    kc_dev = KC_K * out[O_ATR[KC_ATR_J]]
    out[O_KC_UP] = kc_mid + kc_dev
    out[O_KC_LO] = kc_mid - kc_dev
    out[O_KC_PCTB] = ratio(c - (kc_mid - kc_dev), 2.0 * kc_dev)
    out[O_HL] = (h - low) / c
