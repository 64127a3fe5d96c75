"""The compiled engine: all bar-only float families folded bar by bar over per-symbol state.

Why one engine for batch and online: each family is one `step` kernel (transforms/families), and
backfill, single-bar streaming and micro-batches all call `run_rows` (or `update_one`) on a state
array with one row per symbol. Backfill is therefore exactly what a stream would have produced,
bar for bar, and its speed comes from running the loop in compiled code.

State per symbol: `STATE_SLOTS` float64 slots (rings and smoothers of every family) plus the last
event time (int64 ns) that guards against replayed or late bars.

Corporate actions (`transforms.adjustments`): before folding a bar of symbol i, every action of i
known after its previous bar and at or before this one moves i's state onto the new price basis:
each slot is multiplied by f**price / f_split**volume as its family's `Layout` declares, f being
the split factor (level families) or split x dividend (return families). A symbol with nothing
pending pays one comparison per bar.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from transforms import catalog

_PACKAGE = Path(__file__).resolve().parent


def _kernel_sources() -> list[Path]:
    return sorted(
        [_PACKAGE / "catalog.py", _PACKAGE / "engine.py", *_PACKAGE.glob("families/*.py")]
    )


def _guard_kernel_cache() -> None:
    """Drop numba's on-disk kernel cache when any kernel source changed.

    Numba revalidates a cached function only against its own file, but the kernels bake in
    column positions and window sizes from the catalog and inline the shared primitives: a change
    there must recompile them all.
    """
    import numba

    digest = hashlib.sha256(numba.__version__.encode())
    for path in _kernel_sources():
        digest.update(path.read_bytes())
    fingerprint = digest.hexdigest()
    caches = [_PACKAGE / "__pycache__", _PACKAGE / "families" / "__pycache__"]
    marker = caches[0] / "kernels.fingerprint"
    try:
        if marker.exists() and marker.read_text() == fingerprint:
            return
        for folder in caches:
            for stale in [*folder.glob("*.nbi"), *folder.glob("*.nbc")]:
                stale.unlink(missing_ok=True)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(fingerprint)
    except OSError:  # read-only checkout: numba then uses its own cache directory
        pass


_guard_kernel_cache()

from numba import njit  # noqa: E402

from transforms.families import (  # noqa: E402
    interactions,
    oscillators,
    realized_vol,
    returns,
    rolling_stats,
    trend,
    volatility,
    volume,
    volume_stats,
)

# Kernel order = catalog order of the float families; interactions last (it reads the others).
_MODULES = (
    returns,
    trend,
    oscillators,
    volatility,
    realized_vol,
    volume,
    volume_stats,
    rolling_stats,
    interactions,
)
KERNEL_FAMILIES = tuple(m.__name__.rsplit(".", 1)[1] for m in _MODULES)
_b = tuple(int(x) for x in np.cumsum([0, *(m.STATE.size for m in _MODULES)]))
STATE_SLOTS = _b[-1]
FLOAT_NAMES: tuple[str, ...] = tuple(catalog.bar_float_names())
N_FLOAT = len(FLOAT_NAMES)
NO_TIME = np.iinfo(np.int64).min


def _scaling_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per state slot: price exponent, volume exponent, 1.0 if the slot's family is on the
    total-return basis (from each family's `Layout`)."""
    from transforms.families.primitives import TOTAL

    px, vol, total = [], [], []
    for m in _MODULES:
        p, v = m.STATE.exponents()
        px.append(p)
        vol.append(v)
        total.append(np.full(m.STATE.size, 1.0 if m.STATE.basis == TOTAL else 0.0))
    return np.concatenate(px), np.concatenate(vol), np.concatenate(total)


PRICE_EXP, VOLUME_EXP, TOTAL_BASIS = _scaling_tables()
SCALED = np.flatnonzero((PRICE_EXP != 0) | (VOLUME_EXP != 0)).astype(np.int64)

if [f for f in catalog.FAMILIES.values() if f.kind == "bar" and f.name != "calendar"] != [
    catalog.FAMILIES[name] for name in KERNEL_FAMILIES
]:
    raise RuntimeError("catalog float families and engine kernels are out of order")


def family_mask(families: list[str] | tuple[str, ...] | None = None) -> np.ndarray:
    """uint8 mask over KERNEL_FAMILIES (None = all) for `run_rows`' `enabled` argument."""
    if families is None:
        return np.ones(len(KERNEL_FAMILIES), dtype=np.uint8)
    unknown = set(families) - set(KERNEL_FAMILIES) - {"calendar"}
    if unknown:
        raise ValueError(f"unknown bar families {sorted(unknown)}; known: {KERNEL_FAMILIES}")
    return np.array([name in families for name in KERNEL_FAMILIES], dtype=np.uint8)


# Every family `step` is declared inline="always" (numba IR inlining) so one bar's whole fold is
# one function: the array views passed to a called function cost an atomic reference-count
# increment/decrement pair each, which measured ~20% of the kernel time when the steps were calls.
# The window reductions in primitives stay separate functions: they carry their own fastmath flags,
# which IR inlining would drop.
@njit(cache=True, inline="always")
def step_all(state, i, o, h, low, c, v, session, out, r, enabled):
    """Fold one bar into symbol `i`'s state row and write every float feature into `out[r]`.

    Each family's views (its state slice, the output row) are made inside its own branch: views
    made up front cost reference-count work on every bar even for disabled families (~20 ms per
    619k bars with every family off, ~10% of the TA-Lib subset's kernel time).
    """
    if enabled[0]:
        returns.step(state[i, _b[0] : _b[1]], o, h, low, c, v, session, out[r])
    if enabled[1]:
        trend.step(state[i, _b[1] : _b[2]], o, h, low, c, v, session, out[r])
    if enabled[2]:
        oscillators.step(state[i, _b[2] : _b[3]], o, h, low, c, v, session, out[r])
    if enabled[3]:
        volatility.step(state[i, _b[3] : _b[4]], o, h, low, c, v, session, out[r])
    if enabled[4]:
        realized_vol.step(state[i, _b[4] : _b[5]], o, h, low, c, v, session, out[r])
    if enabled[5]:
        volume.step(state[i, _b[5] : _b[6]], o, h, low, c, v, session, out[r])
    if enabled[6]:
        volume_stats.step(state[i, _b[6] : _b[7]], o, h, low, c, v, session, out[r])
    if enabled[7]:
        rolling_stats.step(state[i, _b[7] : _b[8]], o, h, low, c, v, session, out[r])
    if enabled[8]:
        interactions.step(state[i, _b[8] : _b[9]], o, h, low, c, v, session, out[r])


@njit(cache=True)
def apply_actions(state, i, t, next_ns, ptr, end, a_ts, a_split, a_div):
    """Apply symbol i's pending actions known at or before `t` to its state row (the state
    transformation of every family at once, per the declared slot scales)."""
    k = ptr[i]
    e = end[i]
    while k < e and a_ts[k] <= t:
        fs = a_split[k]
        ft = fs * a_div[k]
        for q in range(SCALED.size):
            j = SCALED[q]
            f = ft if TOTAL_BASIS[j] != 0.0 else fs
            x = state[i, j]
            pe = PRICE_EXP[j]
            if pe == 1.0:
                x *= f
            elif pe == 2.0:
                x *= f * f
            elif pe != 0.0:
                x *= f**pe
            ve = VOLUME_EXP[j]
            if ve == 1.0:
                x /= fs
            elif ve != 0.0:
                x /= fs**ve
            state[i, j] = x
        k += 1
    ptr[i] = k
    next_ns[i] = a_ts[k] if k < e else np.iinfo(np.int64).max


@njit(cache=True)
def run_rows(
    state, last_ts, sym, ts, o, h, low, c, v, session, out, enabled,
    next_ns, ptr, end, a_ts, a_split, a_div,
):  # fmt: skip
    """Fold rows in the given order; a row not newer than its symbol's last bar is skipped.

    The last six arguments are the corporate actions (`adjustments.EngineActions.args()`).
    Returns the accepted mask; `out[r]` is written for accepted rows only.
    """
    accepted = np.zeros(sym.size, dtype=np.bool_)
    for r in range(sym.size):
        i = sym[r]
        if ts[r] <= last_ts[i]:
            continue
        if ts[r] >= next_ns[i]:
            apply_actions(state, i, ts[r], next_ns, ptr, end, a_ts, a_split, a_div)
        last_ts[i] = ts[r]
        # step_all's body, written out: calling the (IR-inlined) step_all here re-binds its array
        # arguments on every bar, an atomic reference-count pair each (~20 ms per 619k bars).
        # update_one calls step_all; tests/transforms/test_online_parity.py holds the two equal.
        or_, hr, lr, cr, vr, dr = o[r], h[r], low[r], c[r], v[r], session[r]
        if enabled[0]:
            returns.step(state[i, _b[0] : _b[1]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[1]:
            trend.step(state[i, _b[1] : _b[2]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[2]:
            oscillators.step(state[i, _b[2] : _b[3]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[3]:
            volatility.step(state[i, _b[3] : _b[4]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[4]:
            realized_vol.step(state[i, _b[4] : _b[5]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[5]:
            volume.step(state[i, _b[5] : _b[6]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[6]:
            volume_stats.step(state[i, _b[6] : _b[7]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[7]:
            rolling_stats.step(state[i, _b[7] : _b[8]], or_, hr, lr, cr, vr, dr, out[r])
        if enabled[8]:
            interactions.step(state[i, _b[8] : _b[9]], or_, hr, lr, cr, vr, dr, out[r])
        accepted[r] = True
    return accepted


@njit(cache=True)
def update_one(
    state, last_ts, i, ts, o, h, low, c, v, session, out, enabled,
    next_ns, ptr, end, a_ts, a_split, a_div,
):  # fmt: skip
    """Single-bar variant of `run_rows` (no per-call array allocation); False = stale bar."""
    if ts <= last_ts[i]:
        return False
    if ts >= next_ns[i]:
        apply_actions(state, i, ts, next_ns, ptr, end, a_ts, a_split, a_div)
    last_ts[i] = ts
    step_all(state, i, o, h, low, c, v, session, out.reshape(1, out.size), 0, enabled)
    return True
