"""Volatility: true range, ATR/NATR (Wilder), realised volatility, Bollinger bands (TA-Lib),
Parkinson / Garman-Klass / Rogers-Satchell range estimators, Keltner channels, bar range.

State: previous close, Wilder smoothers per ATR, rings of log returns (60), closes (20) and the
per-bar range-estimator terms (20 each), Bollinger running sums and the Keltner EMA.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    Layout,
    column,
    ratio,
    ring_lag,
    ring_moments,
    ring_push,
    ring_sum,
    ta_ema,
    ta_sma,
    wilder,
)

ATR_N = np.array(cat.ATR_WINDOWS, dtype=np.int64)
NATR_J = cat.ATR_WINDOWS.index(cat.NATR_WINDOW)
RV_N = np.array(cat.RV_WINDOWS, dtype=np.int64)
RV_CAP = max(cat.RV_WINDOWS)
BB_N, BB_K = cat.BBANDS
RNG_N = cat.RANGE_VOL_WINDOW
KC_EMA, KC_ATR, KC_K = cat.KELTNER
KC_ATR_J = cat.ATR_WINDOWS.index(KC_ATR)
ANNUAL = math.sqrt(cat.TRADING_DAYS)
GK_C = 2.0 * math.log(2.0) - 1.0
PARK_C = 1.0 / (4.0 * math.log(2.0))

O_TRANGE = column(["trange"])[0]
O_ATR = column([f"atr_{n}" for n in cat.ATR_WINDOWS])
O_NATR = column([f"natr_{cat.NATR_WINDOW}"])[0]
O_RV = column([f"rv_{n}" for n in cat.RV_WINDOWS])
O_BB_UP, O_BB_MID, O_BB_LO, O_BB_PCTB, O_BB_WIDTH = column(
    [f"bb_{p}_{BB_N}_{BB_K}" for p in ("upper", "middle", "lower", "pctb", "width")]
)
O_PARK, O_GK, O_RS = column(
    [f"{p}_{RNG_N}" for p in ("parkinson", "garman_klass", "rogers_satchell")]
)
O_KC_UP, O_KC_LO, O_KC_PCTB = column(
    [f"kc_{p}_{KC_EMA}_{KC_K}" for p in ("upper", "lower", "pctb")]
)
O_HL = column(["hl_range"])[0]

STATE = Layout()
COUNT = STATE.scalar()
PREV_CLOSE = STATE.scalar()
ATR_S = STATE.scalar(2 * ATR_N.size)
LOG_RETS = STATE.ring(RV_CAP)
CLOSES = STATE.ring(BB_N)
BB_SUM = STATE.smoother()
BB_SUMSQ = STATE.smoother()
PARK = STATE.ring(RNG_N)
GK = STATE.ring(RNG_N)
RS = STATE.ring(RNG_N)
KC_EMA_S = STATE.smoother()


@njit(cache=True, inline="always")
def _annualised_rms(s, base, n):
    """sqrt(max(mean of the ring's last n terms, 0) * trading days)."""
    mean = ring_sum(s, base, n, n) / n
    return math.sqrt(mean * cat.TRADING_DAYS) if mean > 0.0 else 0.0


@njit(cache=True)
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
        ring_push(s, LOG_RETS, RV_CAP, math.log(c / pc))
    out[O_TRANGE] = tr
    for j in range(ATR_N.size):
        out[O_ATR[j]] = wilder(s, ATR_S + 2 * j, ATR_N[j], tr) if k >= 2 else NAN
    atr_natr = out[O_ATR[NATR_J]]
    out[O_NATR] = (atr_natr / c) * 100.0
    s[PREV_CLOSE] = c

    # realised volatility: sample std of log returns, two-pass over the ring
    n_rets = s[LOG_RETS]
    for j in range(RV_N.size):
        n = RV_N[j]
        if n_rets >= n:
            m2 = ring_moments(s, LOG_RETS, RV_CAP, n)[1]
            out[O_RV[j]] = math.sqrt(m2 / (n - 1)) * ANNUAL
        else:
            out[O_RV[j]] = NAN

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

    # range-based estimators: exact means of per-bar terms over the window
    hl = math.log(h / low)
    co = math.log(c / o)
    ring_push(s, PARK, RNG_N, hl * hl * PARK_C)
    ring_push(s, GK, RNG_N, 0.5 * hl * hl - GK_C * co * co)
    ring_push(
        s, RS, RNG_N, math.log(h / c) * math.log(h / o) + math.log(low / c) * math.log(low / o)
    )
    if k >= RNG_N:
        out[O_PARK] = _annualised_rms(s, PARK, RNG_N)
        out[O_GK] = _annualised_rms(s, GK, RNG_N)
        out[O_RS] = _annualised_rms(s, RS, RNG_N)
    else:
        out[O_PARK] = NAN
        out[O_GK] = NAN
        out[O_RS] = NAN

    # Keltner channels: EMA of close +/- KC_K * Wilder ATR
    kc_mid = ta_ema(s, KC_EMA_S, KC_EMA, c)
    kc_dev = KC_K * out[O_ATR[KC_ATR_J]]
    out[O_KC_UP] = kc_mid + kc_dev
    out[O_KC_LO] = kc_mid - kc_dev
    out[O_KC_PCTB] = ratio(c - (kc_mid - kc_dev), 2.0 * kc_dev)
    out[O_HL] = (h - low) / c
