"""Compiled building blocks shared by the family kernels: state layout, ring buffers, smoothers.

Why: every family keeps a symbol's state in a slice of one float64 vector (so the engine can hold
all symbols' state in one array and a stream job can size it: 8 bytes per slot). Rolling windows
are ring buffers of exactly the window's values; moving averages that TA-Lib defines with running
sums reproduce TA-Lib's operation order, and statistics TA-Lib lacks are computed from the exact
window contents (two-pass), so nothing drifts however long a stream runs.

Ring buffer layout at `base`: [count, next write position, cap values]; count saturates at cap.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from transforms import catalog

NAN = math.nan
# Window reductions may be reassociated (SIMD): every path runs the same compiled code, so batch and
# online stay bit-identical, and the result is still an exact sum of the window's values.
REASSOC = {"reassoc", "nsz"}
_FLOAT_COLUMNS = {name: i for i, name in enumerate(catalog.bar_float_names())}


def column(names: list[str]) -> np.ndarray:
    """Positions of float bar features in the kernels' output row (catalog order)."""
    return np.array([_FLOAT_COLUMNS[n] for n in names], dtype=np.int64)


class Scale(NamedTuple):
    """How a state slot changes when earlier prices are multiplied by a factor f (a corporate
    action): the slot is multiplied by f**price * (1/f_split)**volume. Prices scale with f,
    volumes inversely with the split factor only, price x volume is invariant under a split,
    squares of prices scale with f**2; counts, positions, ages, ratios and log returns not at all."""

    price: int
    volume: int


NONE = Scale(0, 0)
PRICE = Scale(1, 0)
PRICE2 = Scale(2, 0)
VOLUME = Scale(0, 1)
PRICE_VOLUME = Scale(1, 1)

# Which factor a family's price slots take: SPLIT (level features: averages, bands, ATR, OBV...)
# or TOTAL (split x dividend: features that are returns, so a dividend is not a loss).
SPLIT = "split"
TOTAL = "total"


class Layout:
    """Allocates named slots of a family's state vector at import time (plain Python ints).

    Every slot is declared with its `Scale`, so the engine can move a symbol's whole state onto a
    new price basis when a corporate action takes effect (`transforms.adjustments`): the one state
    transformation of the family. `basis` says which factor its price slots follow.
    """

    def __init__(self, basis: str = SPLIT) -> None:
        if basis not in (SPLIT, TOTAL):
            raise ValueError(f"basis must be {SPLIT!r} or {TOTAL!r}, got {basis!r}")
        self.basis = basis
        self.size = 0
        self.scales: list[Scale] = []

    def scalar(self, scale: Scale, n: int = 1) -> int:
        base = self.size
        self.size += n
        self.scales.extend([scale] * n)
        return base

    def ring(self, cap: int, scale: Scale) -> int:
        """[count, next position] (unscaled) + `cap` values of `scale`."""
        base = self.scalar(NONE, 2)
        self.scalar(scale, cap)
        return base

    def smoother(self, scale: Scale) -> int:
        """Slots of `ta_sma`, `ta_ema` and `wilder`: [count, running value of `scale`]."""
        base = self.scalar(NONE)
        self.scalar(scale)
        return base

    def smoothers(self, n: int, scale: Scale) -> int:
        """`n` consecutive smoothers (the j-th at base + 2j)."""
        base = self.size
        for _ in range(n):
            self.smoother(scale)
        return base

    def exponents(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-slot (price exponent, volume exponent) as float64 arrays."""
        table = np.array([tuple(s) for s in self.scales], dtype=np.float64).reshape(-1, 2)
        return table[:, 0].copy(), table[:, 1].copy()


@njit(cache=True, inline="always")
def ring_push(s, base, cap, x):
    pos = int(s[base + 1])
    s[base + 2 + pos] = x
    pos += 1
    if pos == cap:
        pos = 0
    s[base + 1] = pos
    if s[base] < cap:
        s[base] += 1.0


@njit(cache=True, inline="always")
def ring_count(s, base):
    return int(s[base])


@njit(cache=True, inline="always")
def ring_lag(s, base, cap, lag):
    """Value pushed `lag` pushes ago (0 = newest); caller checks lag < count."""
    pos = int(s[base + 1]) - 1 - lag
    if pos < 0:
        pos += cap
    return s[base + 2 + pos]


@njit(cache=True, inline="always")
def ring_window(s, base, cap, n):
    """The newest n values as two contiguous views (older part, newer part; the second may be
    empty). Plain loops over views let the compiler vectorise window reductions."""
    start = int(s[base + 1]) - n
    if start < 0:
        start += cap
    first = base + 2 + start
    m = min(n, cap - start)
    return s[first : first + m], s[base + 2 : base + 2 + (n - m)]


@njit(cache=True, fastmath=REASSOC)
def _sum(view):
    total = 0.0
    for i in range(view.size):  # index loops vectorise; `for x in view` does not
        total += view[i]
    return total


@njit(cache=True, fastmath=REASSOC)
def ring_sum(s, base, cap, n):
    """Sum of the newest n values."""
    older, newer = ring_window(s, base, cap, n)
    return _sum(older) + _sum(newer)


@njit(cache=True, fastmath=REASSOC)
def _central(view, mean):
    m2 = 0.0
    m3 = 0.0
    for i in range(view.size):
        d = view[i] - mean
        m2 += d * d
        m3 += d * d * d
    return m2, m3


@njit(cache=True, fastmath=REASSOC)
def ring_moments(s, base, cap, n):
    """(mean, sum of squared deviations, sum of cubed deviations) of the newest n values,
    two-pass (mean first) so no cancellation builds up."""
    older, newer = ring_window(s, base, cap, n)
    mean = (_sum(older) + _sum(newer)) / n
    a2, a3 = _central(older, mean)
    b2, b3 = _central(newer, mean)
    return mean, a2 + b2, a3 + b3


@njit(cache=True, fastmath=REASSOC)
def _abs_dev(view, center):
    total = 0.0
    for i in range(view.size):
        total += abs(view[i] - center)
    return total


@njit(cache=True, fastmath=REASSOC)
def ring_abs_dev(s, base, cap, n, center):
    """Sum of |x - center| over the newest n values."""
    older, newer = ring_window(s, base, cap, n)
    return _abs_dev(older, center) + _abs_dev(newer, center)


# Ring values are finite by construction (validated prices, their logs and products), so the
# extreme-value loops may assume no NaN/inf, which lets them vectorise too.
FINITE = {"nnan", "ninf", "nsz", "reassoc"}


@njit(cache=True, fastmath=FINITE)
def _min(view, lo):
    for i in range(view.size):
        lo = min(lo, view[i])
    return lo


@njit(cache=True, fastmath=FINITE)
def _max(view, hi):
    for i in range(view.size):
        hi = max(hi, view[i])
    return hi


@njit(cache=True)
def ring_min(s, base, cap, n):
    older, newer = ring_window(s, base, cap, n)
    return _min(newer, _min(older, ring_lag(s, base, cap, 0)))


@njit(cache=True)
def ring_max(s, base, cap, n):
    older, newer = ring_window(s, base, cap, n)
    return _max(newer, _max(older, ring_lag(s, base, cap, 0)))


@njit(cache=True, inline="always")
def ta_sma(s, base, n, x, x_leaving):
    """TA-Lib SMA order: total += x; out = total / n; total -= x[t-n+1] (`x_leaving`)."""
    cnt = s[base] + 1.0
    s[base] = cnt
    total = s[base + 1] + x
    out = NAN
    if cnt >= n:
        out = total / n
        total -= x_leaving
    s[base + 1] = total
    return out


@njit(cache=True, inline="always")
def ta_ema(s, base, n, x):
    """TA-Lib EMA: k = 2/(n+1), seeded with the mean of the first n inputs (output from input n)."""
    cnt = s[base] + 1.0
    s[base] = cnt
    if cnt < n:
        s[base + 1] += x
        return NAN
    if cnt == n:
        value = (s[base + 1] + x) / n
    else:
        prev = s[base + 1]
        value = ((x - prev) * (2.0 / (n + 1.0))) + prev
    s[base + 1] = value
    return value


@njit(cache=True, inline="always")
def wilder(s, base, n, x):
    """Wilder smoothing in TA-Lib's order, seeded with the mean of the first n inputs."""
    cnt = s[base] + 1.0
    s[base] = cnt
    if cnt < n:
        s[base + 1] += x
        return NAN
    if cnt == n:
        value = (s[base + 1] + x) / n
    else:
        value = s[base + 1] * (n - 1)
        value += x
        value /= n
    s[base + 1] = value
    return value


@njit(cache=True, inline="always")
def ratio(a, b):
    """a / b, null when b is 0 or either side is null."""
    if b == 0.0 or math.isnan(a) or math.isnan(b):
        return NAN
    return a / b


@njit(cache=True, inline="always")
def track_max(s, base, ring, cap, n, x):
    """Maximum of the newest n values of `ring` (x, just pushed, included), updated in O(1)
    amortised as TA-Lib's STOCH/WILLR do: slots [value, age in bars]; the window is rescanned
    only when the tracked maximum leaves it. Exact: the same value as scanning the window."""
    if x >= s[base] or ring_count(s, ring) == 1:
        s[base] = x
        s[base + 1] = 0.0
        return x
    age = s[base + 1] + 1.0
    if age >= n:  # the maximum left the window: rescan, newest first so ties keep the newest
        best = ring_lag(s, ring, cap, 0)
        age = 0.0
        for lag in range(1, n):
            value = ring_lag(s, ring, cap, lag)
            if value > best:
                best = value
                age = lag
        s[base] = best
    s[base + 1] = age
    return s[base]


@njit(cache=True, inline="always")
def track_min(s, base, ring, cap, n, x):
    """Minimum counterpart of `track_max` (same slots, same exactness)."""
    if x <= s[base] or ring_count(s, ring) == 1:
        s[base] = x
        s[base + 1] = 0.0
        return x
    age = s[base + 1] + 1.0
    if age >= n:
        best = ring_lag(s, ring, cap, 0)
        age = 0.0
        for lag in range(1, n):
            value = ring_lag(s, ring, cap, lag)
            if value < best:
                best = value
                age = lag
        s[base] = best
    s[base + 1] = age
    return s[base]
