"""Returns and momentum: simple/log returns, ROC and MOM (TA-Lib), 12-1 momentum, gap, intraday.

State: a ring of the last 253 closes (enough for the 252-bar lookback) plus the previous close.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    PRICE,
    TOTAL,
    Layout,
    column,
    ring_count,
    ring_lag,
    ring_push,
)

RET = np.array(cat.RET_WINDOWS, dtype=np.int64)
LOG_RET = np.array(cat.LOG_RET_WINDOWS, dtype=np.int64)
ROC = np.array(cat.ROC_WINDOWS, dtype=np.int64)
MOM = np.array(cat.MOM_WINDOWS, dtype=np.int64)
LONG, SKIP = cat.MOM_LONG, cat.MOM_SKIP
CAP = LONG + 1

O_RET = column([f"ret_{n}" for n in cat.RET_WINDOWS])
O_LOG = column([f"log_ret_{n}" for n in cat.LOG_RET_WINDOWS])
O_ROC = column([f"roc_{n}" for n in cat.ROC_WINDOWS])
O_MOM = column([f"mom_{n}" for n in cat.MOM_WINDOWS])
O_MOM_LONG, O_GAP, O_INTRADAY = column([f"mom_{LONG}_{SKIP}", "gap_ret", "intraday_ret"])

STATE = Layout(TOTAL)  # returns: split x dividend basis
CLOSES = STATE.ring(CAP, PRICE)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    ring_push(s, CLOSES, CAP, c)
    k = ring_count(s, CLOSES)  # bars seen, this one included (saturates at CAP)
    for j in range(RET.size):
        n = RET[j]
        out[O_RET[j]] = c / ring_lag(s, CLOSES, CAP, n) - 1.0 if k > n else NAN
    for j in range(LOG_RET.size):
        n = LOG_RET[j]
        out[O_LOG[j]] = math.log(c / ring_lag(s, CLOSES, CAP, n)) if k > n else NAN
    for j in range(ROC.size):
        n = ROC[j]
        out[O_ROC[j]] = ((c / ring_lag(s, CLOSES, CAP, n)) - 1.0) * 100.0 if k > n else NAN
    for j in range(MOM.size):
        n = MOM[j]
        out[O_MOM[j]] = c - ring_lag(s, CLOSES, CAP, n) if k > n else NAN
    if k > LONG:
        out[O_MOM_LONG] = ring_lag(s, CLOSES, CAP, SKIP) / ring_lag(s, CLOSES, CAP, LONG) - 1.0
    else:
        out[O_MOM_LONG] = NAN
    out[O_GAP] = o / ring_lag(s, CLOSES, CAP, 1) - 1.0 if k > 1 else NAN
    out[O_INTRADAY] = c / o - 1.0
