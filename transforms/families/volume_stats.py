"""Volume statistics: relative volume, rolling and session-anchored VWAP, traded value, volume
z-score, from exact sums over the window contents.

State: rings of volumes (50), typical price x volume (20) and close x volume (20), and the
current regular session's VWAP sums (extended-hours bars do not enter them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from transforms import catalog as cat
from transforms.families.primitives import (
    NAN,
    NONE,
    PRICE_VOLUME,
    SPLIT,
    VOLUME,
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

O_VR = column([f"vol_ratio_{n}" for n in cat.VOL_RATIO_WINDOWS])
O_VWAP = column([f"vwap_{n}" for n in cat.VWAP_WINDOWS])
O_PX_VWAP, O_VWAP_SESSION, O_DOLLAR, O_VOL_Z = column(
    [
        f"px_vwap_ratio_{cat.VWAP_WINDOWS[-1]}",
        "vwap_session",
        f"dollar_vol_{STATS_N}",
        f"vol_z_{STATS_N}",
    ]
)

STATE = Layout(SPLIT)  # level features: split-adjusted prices and volumes
COUNT = STATE.scalar(NONE)
VOLUMES = STATE.ring(VOL_CAP, VOLUME)
TPV = STATE.ring(TPV_CAP, PRICE_VOLUME)
CV = STATE.ring(STATS_N, PRICE_VOLUME)
SESSION = STATE.scalar(NONE)  # session id, sum(tp * volume), sum(volume)
STATE.scalar(PRICE_VOLUME)
STATE.scalar(VOLUME)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    k = s[COUNT]
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

    # regular-session VWAP: `session` = 2 * local day + 1 for a regular-session bar, 2 * day for
    # an extended-hours one (transforms/families/calendar.py). Sums restart with each session
    # (odd codes never equal the initial 0); extended-hours bars neither enter nor reset them.
    if session % 2 == 1:
        if s[SESSION] != session:
            s[SESSION] = session
            s[SESSION + 1] = 0.0
            s[SESSION + 2] = 0.0
        s[SESSION + 1] += tp * v
        s[SESSION + 2] += v
        out[O_VWAP_SESSION] = ratio(s[SESSION + 1], s[SESSION + 2])
    else:
        out[O_VWAP_SESSION] = NAN

    if k >= STATS_N:
        out[O_DOLLAR] = ring_sum(s, CV, STATS_N, STATS_N) / STATS_N
        mean, m2, _ = ring_moments(s, VOLUMES, VOL_CAP, STATS_N)
        out[O_VOL_Z] = ratio(v - mean, math.sqrt(m2 / (STATS_N - 1)))
    else:
        out[O_DOLLAR] = NAN
        out[O_VOL_Z] = NAN
