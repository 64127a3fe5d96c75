"""Volume: OBV, Chaikin A/D line and oscillator (TA-Lib), relative volume, rolling and
session-anchored VWAP, traded value, volume z-score, close location value.

State: previous close, OBV and A/D totals, the two ADOSC EMAs, rings of volumes (50), of
typical price x volume (20) and of close x volume (20), and the current session's VWAP sums.
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
    ring_moments,
    ring_push,
    ring_sum,
)

VR_N = np.array(cat.VOL_RATIO_WINDOWS, dtype=np.int64)
VWAP_N = np.array(cat.VWAP_WINDOWS, dtype=np.int64)
STATS_N = cat.VOLUME_STATS_WINDOW
VOL_CAP = max(*cat.VOL_RATIO_WINDOWS, STATS_N, *cat.VWAP_WINDOWS)
TPV_CAP = max(cat.VWAP_WINDOWS)
FAST, SLOW = cat.ADOSC
FAST_K = 2.0 / (FAST + 1.0)
SLOW_K = 2.0 / (SLOW + 1.0)

O_OBV, O_AD, O_ADOSC = column(["obv", "ad", f"adosc_{FAST}_{SLOW}"])
O_VR = column([f"vol_ratio_{n}" for n in cat.VOL_RATIO_WINDOWS])
O_VWAP = column([f"vwap_{n}" for n in cat.VWAP_WINDOWS])
O_PX_VWAP, O_VWAP_SESSION, O_LOG_VOL, O_DOLLAR, O_VOL_Z, O_CLV = column(
    [
        f"px_vwap_ratio_{cat.VWAP_WINDOWS[-1]}",
        "vwap_session",
        "log_volume",
        f"dollar_vol_{STATS_N}",
        f"vol_z_{STATS_N}",
        "clv",
    ]
)

STATE = Layout()
COUNT = STATE.scalar()
PREV_CLOSE = STATE.scalar()
OBV = STATE.scalar()
AD = STATE.scalar()
AD_FAST = STATE.scalar()
AD_SLOW = STATE.scalar()
VOLUMES = STATE.ring(VOL_CAP)
TPV = STATE.ring(TPV_CAP)
CV = STATE.ring(STATS_N)
SESSION = STATE.scalar(3)  # session id, sum(tp * volume), sum(volume)


@njit(cache=True)
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

    # relative volume and VWAPs over exact window sums
    tp = (h + low + c) / 3.0
    ring_push(s, VOLUMES, VOL_CAP, v)
    ring_push(s, TPV, TPV_CAP, tp * v)
    ring_push(s, CV, STATS_N, c * v)
    for j in range(VR_N.size):
        n = VR_N[j]
        out[O_VR[j]] = ratio(v, ring_sum(s, VOLUMES, VOL_CAP, n) / n) if k >= n else NAN
    for j in range(VWAP_N.size):
        n = VWAP_N[j]
        if k >= n:
            out[O_VWAP[j]] = ratio(ring_sum(s, TPV, TPV_CAP, n), ring_sum(s, VOLUMES, VOL_CAP, n))
        else:
            out[O_VWAP[j]] = NAN
    out[O_PX_VWAP] = ratio(c, out[O_VWAP[VWAP_N.size - 1]])

    # session-anchored VWAP: sums restart when the exchange-local date changes
    if k == 1 or s[SESSION] != session:
        s[SESSION] = session
        s[SESSION + 1] = 0.0
        s[SESSION + 2] = 0.0
    s[SESSION + 1] += tp * v
    s[SESSION + 2] += v
    out[O_VWAP_SESSION] = ratio(s[SESSION + 1], s[SESSION + 2])

    out[O_LOG_VOL] = math.log1p(v)
    if k >= STATS_N:
        out[O_DOLLAR] = ring_sum(s, CV, STATS_N, STATS_N) / STATS_N
        mean, m2, _ = ring_moments(s, VOLUMES, VOL_CAP, STATS_N)
        out[O_VOL_Z] = ratio(v - mean, math.sqrt(m2 / (STATS_N - 1)))
    else:
        out[O_DOLLAR] = NAN
        out[O_VOL_Z] = NAN
    out[O_CLV] = ratio((c - low) - (h - c), rng)
