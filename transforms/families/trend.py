"""Trend: SMAs and EMAs (TA-Lib seeding and order), price-to-average ratios, MACD 12/26/9.

State: a ring of the last 200 closes, one [count, value] smoother per average, and MACD's two
EMAs and signal smoother. O(1) per bar except the MACD seed (once, 12 values).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    NONE,
    PRICE,
    SPLIT,
    Layout,
    column,
    ratio,
    ring_lag,
    ring_push,
    ring_sum,
    ta_ema,
    ta_sma,
)

SMA_N = np.array(cat.SMA_WINDOWS, dtype=np.int64)
EMA_N = np.array(cat.EMA_WINDOWS, dtype=np.int64)
PX_EMA_N = np.array(cat.PX_EMA_RATIO_WINDOWS, dtype=np.int64)
PX_EMA_J = np.array([cat.EMA_WINDOWS.index(n) for n in cat.PX_EMA_RATIO_WINDOWS], dtype=np.int64)
PAIR_J = np.array(
    [[cat.SMA_WINDOWS.index(a), cat.SMA_WINDOWS.index(b)] for a, b in cat.SMA_PAIRS],
    dtype=np.int64,
)
FAST, SLOW, SIGNAL = cat.MACD
CAP = max(max(cat.SMA_WINDOWS), FAST)

O_SMA = column([f"sma_{n}" for n in cat.SMA_WINDOWS])
O_EMA = column([f"ema_{n}" for n in cat.EMA_WINDOWS])
O_PX_SMA = column([f"px_sma_ratio_{n}" for n in cat.SMA_WINDOWS])
O_PX_EMA = column([f"px_ema_ratio_{n}" for n in cat.PX_EMA_RATIO_WINDOWS])
O_MACD, O_MACD_SIG, O_MACD_HIST = column(
    [
        f"macd_{FAST}_{SLOW}_{SIGNAL}",
        f"macd_signal_{FAST}_{SLOW}_{SIGNAL}",
        f"macd_hist_{FAST}_{SLOW}_{SIGNAL}",
    ]
)
O_PAIR = column([f"sma_ratio_{a}_{b}" for a, b in cat.SMA_PAIRS])

STATE = Layout(SPLIT)  # level features: split-adjusted prices
COUNT = STATE.scalar(NONE)
CLOSES = STATE.ring(CAP, PRICE)
SMA_S = STATE.smoothers(SMA_N.size, PRICE)
EMA_S = STATE.smoothers(EMA_N.size, PRICE)
MACD_FAST = STATE.scalar(PRICE)
MACD_SLOW = STATE.smoother(PRICE)
MACD_SIGNAL = STATE.smoother(PRICE)  # EMA of the MACD line, a price difference


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]
    ring_push(s, CLOSES, CAP, c)
    for j in range(SMA_N.size):
        n = SMA_N[j]
        leaving = ring_lag(s, CLOSES, CAP, n - 1) if k >= n else 0.0
        sma = ta_sma(s, SMA_S + 2 * j, n, c, leaving)
        out[O_SMA[j]] = sma
        out[O_PX_SMA[j]] = ratio(c, sma)
    for j in range(EMA_N.size):
        out[O_EMA[j]] = ta_ema(s, EMA_S + 2 * j, EMA_N[j], c)
    for j in range(PX_EMA_N.size):
        out[O_PX_EMA[j]] = ratio(c, out[O_EMA[PX_EMA_J[j]]])
    for j in range(PAIR_J.shape[0]):
        out[O_PAIR[j]] = ratio(out[O_SMA[PAIR_J[j, 0]]], out[O_SMA[PAIR_J[j, 1]]])

    # MACD as TA-Lib: both EMAs start at bar SLOW-1, the fast one seeded from the closes before it.
    slow = ta_ema(s, MACD_SLOW, SLOW, c)
    line = NAN
    signal = NAN
    if k == SLOW:
        s[MACD_FAST] = ring_sum(s, CLOSES, CAP, FAST) / FAST
    elif k > SLOW:
        prev = s[MACD_FAST]
        s[MACD_FAST] = ((c - prev) * (2.0 / (FAST + 1.0))) + prev
    if k >= SLOW:
        line = s[MACD_FAST] - slow
        signal = ta_ema(s, MACD_SIGNAL, SIGNAL, line)
    if k >= SLOW + SIGNAL - 1:
        out[O_MACD] = line
        out[O_MACD_SIG] = signal
        out[O_MACD_HIST] = line - signal
    else:
        out[O_MACD] = NAN
        out[O_MACD_SIG] = NAN
        out[O_MACD_HIST] = NAN
