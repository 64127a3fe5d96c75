"""Taking decoded arrays over as live state: the one rule both restores follow.

A checkpoint is decoded into a writable buffer (`stream_jobs.checkpoint`), so its arrays can
become a processor's state without a copy. The catalog state (`transforms.online`) and the
anomaly scorer's slab (`stream_jobs.anomaly`) both take their arrays over with `adopt`; the
ownership marker is the source array's write flag: `adopt` clears it, so the next restore of the
same decoded state sees a read-only array and copies (two processors never share memory).
"""

from __future__ import annotations

import numpy as np


def adopt(arr: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    """`arr` itself (a view) when it can serve as live state (writable, aligned, C-contiguous,
    of `dtype`), else a copy; `arr` is made read-only once taken.

    >>> a = np.zeros(3)
    >>> b = adopt(a, np.float64)
    >>> np.shares_memory(a, b), a.flags.writeable, owned(a)
    (True, False, False)
    >>> np.shares_memory(a, adopt(a, np.float64))  # taken already: a copy
    False
    """
    flags = arr.flags
    if arr.dtype != dtype or not (flags.writeable and flags.aligned and flags.c_contiguous):
        return np.array(arr, dtype=dtype, order="C")
    taken = arr.view()
    arr.flags.writeable = False
    return taken


def owned(arr: np.ndarray) -> bool:
    """True while no restore has taken `arr` over (what `adopt` would take without a copy)."""
    return bool(arr.flags.writeable)


def release(arr: np.ndarray) -> None:
    """Mark `arr` as taken (a restore that copied its values must not leave it takeable)."""
    arr.flags.writeable = False
