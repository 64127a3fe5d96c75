"""Rolling statistics: mean, std, min, max, z-score and skew of 1-bar log returns over several
windows, and z-scores of close. Every statistic is computed from the exact window contents
(two-pass central moments), so no running-sum drift or cancellation can build up.

State: previous close, rings of the last 60 log returns and the last 200 closes.
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
    ratio,
    ring_max,
    ring_min,
    ring_moments,
    ring_push,
)

LR_N = np.array(cat.LR_STAT_WINDOWS, dtype=np.int64)
LR_CAP = max(cat.LR_STAT_WINDOWS)
CZ_N = np.array(cat.CLOSE_Z_WINDOWS, dtype=np.int64)
CZ_CAP = max(cat.CLOSE_Z_WINDOWS)
_STATS = ("mean", "std", "min", "max", "z", "skew")
O_LR = np.stack([column([f"lr_{stat}_{n}" for stat in _STATS]) for n in cat.LR_STAT_WINDOWS])
O_CZ = column([f"close_z_{n}" for n in cat.CLOSE_Z_WINDOWS])

STATE = Layout(TOTAL)  # statistics of returns: split x dividend basis
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)
LOG_RETS = STATE.ring(LR_CAP, NONE)  # log returns: invariant under a factor
CLOSES = STATE.ring(CZ_CAP, PRICE)  # close z-scores are scale-free; the ring follows the basis


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]
    if k >= 2:
        lr = math.log(c / s[PREV_CLOSE])
        ring_push(s, LOG_RETS, LR_CAP, lr)
    else:
        lr = NAN
    s[PREV_CLOSE] = c
    n_rets = s[LOG_RETS]
    for j in range(LR_N.size):
        n = LR_N[j]
        cols = O_LR[j]
        if n_rets < n:
            for i in range(cols.size):
                out[cols[i]] = NAN
            continue
        mean, m2, m3 = ring_moments(s, LOG_RETS, LR_CAP, n)
        lo = ring_min(s, LOG_RETS, LR_CAP, n)
        hi = ring_max(s, LOG_RETS, LR_CAP, n)
        std = math.sqrt(m2 / (n - 1))
        out[cols[0]] = mean
        out[cols[1]] = std
        out[cols[2]] = lo
        out[cols[3]] = hi
        out[cols[4]] = ratio(lr - mean, std)
        if m2 > 0.0:
            g1 = (m3 / n) / (m2 / n) ** 1.5
            out[cols[5]] = g1 * math.sqrt(n * (n - 1.0)) / (n - 2.0)
        else:
            out[cols[5]] = NAN

    ring_push(s, CLOSES, CZ_CAP, c)
    for j in range(CZ_N.size):
        n = CZ_N[j]
        if k >= n:
            mean, m2, _ = ring_moments(s, CLOSES, CZ_CAP, n)
            out[O_CZ[j]] = ratio(c - mean, math.sqrt(m2 / (n - 1)))
        else:
            out[O_CZ[j]] = NAN
