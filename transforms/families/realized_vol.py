"""Realised volatility: sample std of log returns and the Parkinson / Garman-Klass /
Rogers-Satchell range estimators, all from the exact window contents (two-pass), annualised.

State: previous close, rings of the last 60 log returns and of the per-bar estimator terms (20).
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
    TOTAL,
    Layout,
    column,
    ring_moments,
    ring_push,
    ring_sum,
)

RV_N = np.array(cat.RV_WINDOWS, dtype=np.int64)
RV_CAP = max(cat.RV_WINDOWS)
RNG_N = cat.RANGE_VOL_WINDOW
ANNUAL = math.sqrt(cat.TRADING_DAYS)
GK_C = 2.0 * math.log(2.0) - 1.0
PARK_C = 1.0 / (4.0 * math.log(2.0))

O_RV = column([f"rv_{n}" for n in cat.RV_WINDOWS])
O_PARK, O_GK, O_RS = column(
    [f"{p}_{RNG_N}" for p in ("parkinson", "garman_klass", "rogers_satchell")]
)

STATE = Layout(TOTAL)  # volatility of returns: split x dividend basis
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)
LOG_RETS = STATE.ring(RV_CAP, NONE)  # log returns: not linear in price, invariant under a factor
PARK = STATE.ring(RNG_N, NONE)  # within-bar log ranges: invariant
GK = STATE.ring(RNG_N, NONE)
RS = STATE.ring(RNG_N, NONE)


@njit(cache=True, inline="always")
def _annualised_rms(s, base, n):
    """sqrt(max(mean of the ring's last n terms, 0) * trading days)."""
    mean = ring_sum(s, base, n, n) / n
    return math.sqrt(mean * cat.TRADING_DAYS) if mean > 0.0 else 0.0


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]
    if k >= 2:
        ring_push(s, LOG_RETS, RV_CAP, math.log(c / s[PREV_CLOSE]))
    s[PREV_CLOSE] = c
    n_rets = s[LOG_RETS]
    for j in range(RV_N.size):
        n = RV_N[j]
        if n_rets >= n:
            m2 = ring_moments(s, LOG_RETS, RV_CAP, n)[1]
            out[O_RV[j]] = math.sqrt(m2 / (n - 1)) * ANNUAL
        else:
            out[O_RV[j]] = NAN

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
