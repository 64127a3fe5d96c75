"""Volume flow: OBV, Chaikin A/D line and oscillator (TA-Lib definitions), log volume, close
location value.

State: previous close, OBV and A/D totals and the two ADOSC EMAs. O(1) per bar.
"""

from __future__ import annotations

import math

from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    NONE,
    PRICE,
    SPLIT,
    VOLUME,
    Layout,
    column,
    ratio,
)

FAST, SLOW = cat.ADOSC
FAST_K = 2.0 / (FAST + 1.0)
SLOW_K = 2.0 / (SLOW + 1.0)

O_OBV, O_AD, O_ADOSC, O_LOG_VOL, O_CLV = column(
    ["obv", "ad", f"adosc_{FAST}_{SLOW}", "log_volume", "clv"]
)

STATE = Layout(SPLIT)  # level features: split-adjusted prices and volumes
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)
OBV = STATE.scalar(VOLUME)
AD = STATE.scalar(VOLUME)  # sum of close-location x volume
AD_FAST = STATE.scalar(VOLUME)
AD_SLOW = STATE.scalar(VOLUME)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]

    # OBV: starts at the first volume (TA-Lib)
    if k == 1:
        s[OBV] = v
    elif c > s[PREV_CLOSE]:
        s[OBV] += v
    elif c < s[PREV_CLOSE]:
        s[OBV] -= v
    out[O_OBV] = s[OBV]
    s[PREV_CLOSE] = c

    # Chaikin A/D line and oscillator (EMAs seeded with the first A/D value)
    rng = h - low
    if rng > 0.0:
        s[AD] += (((c - low) - (h - c)) / rng) * v
    ad = s[AD]
    out[O_AD] = ad
    if k == 1:
        s[AD_FAST] = ad
        s[AD_SLOW] = ad
    else:
        s[AD_FAST] = (FAST_K * ad) + ((1.0 - FAST_K) * s[AD_FAST])
        s[AD_SLOW] = (SLOW_K * ad) + ((1.0 - SLOW_K) * s[AD_SLOW])
    out[O_ADOSC] = s[AD_FAST] - s[AD_SLOW] if k >= max(FAST, SLOW) else NAN

    out[O_LOG_VOL] = math.log1p(v)
    out[O_CLV] = ratio((c - low) - (h - c), rng)
