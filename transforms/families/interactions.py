"""Interactions: a few named combinations of other bar features, each with a reason to exist.

They read the other families' outputs of the same bar (this kernel runs last), so they are exactly
consistent with them. State: the previous close only.
"""

from __future__ import annotations

import math

from numba import njit

from transforms.families.primitives import NAN, NONE, PRICE, SPLIT, Layout, column, ratio

(
    I_ATR14,
    I_RET20,
    I_LRSTD20,
    I_RV5,
    I_RV60,
    I_RET1,
    I_VR20,
    I_SMA50,
    I_SMA200,
    I_BB_UP,
    I_BB_LO,
    I_KC_UP,
    I_KC_LO,
) = column(
    [
        "atr_14",
        "ret_20",
        "lr_std_20",
        "rv_5",
        "rv_60",
        "ret_1",
        "vol_ratio_20",
        "sma_50",
        "sma_200",
        "bb_upper_20_2",
        "bb_lower_20_2",
        "kc_upper_20_2",
        "kc_lower_20_2",
    ]
)
O_MOVE, O_RET_ADJ, O_RV_RATIO, O_RET_VOL, O_SPREAD, O_SQUEEZE = column(
    [
        "move_atr_14",
        "ret_20_vol_adj",
        "rv_ratio_5_60",
        "ret_1_x_vol_ratio_20",
        "sma_spread_50_200_atr",
        "bb_kc_squeeze_20",
    ]
)
SQRT_20 = math.sqrt(20.0)

STATE = Layout(SPLIT)  # move_atr_14 divides a close change by the split-basis ATR
COUNT = STATE.scalar(NONE)
PREV_CLOSE = STATE.scalar(PRICE)


@njit(cache=True, inline="always")
def step(s, o, h, low, c, v, session, out):
    s[COUNT] += 1.0
    move = c - s[PREV_CLOSE] if s[COUNT] >= 2 else NAN
    s[PREV_CLOSE] = c
    out[O_MOVE] = ratio(move, out[I_ATR14])
    out[O_RET_ADJ] = ratio(out[I_RET20], out[I_LRSTD20] * SQRT_20)
    out[O_RV_RATIO] = ratio(out[I_RV5], out[I_RV60])
    out[O_RET_VOL] = out[I_RET1] * out[I_VR20]
    out[O_SPREAD] = ratio(out[I_SMA50] - out[I_SMA200], out[I_ATR14])
    out[O_SQUEEZE] = ratio(out[I_BB_UP] - out[I_BB_LO], out[I_KC_UP] - out[I_KC_LO])
