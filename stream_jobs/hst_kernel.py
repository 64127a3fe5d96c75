"""River's `MinMaxScaler | HalfSpaceTrees` as arrays and one compiled score-then-learn kernel.

Why: River walks 10 trees x 8 levels of node objects with dict features per event (~17k events/s
in the market job), and a checkpoint had to read its ~5k node objects per symbol one by one.

River stays the definition. `HalfSpaceTrees` builds its trees on the first `learn_one` from its own
`random.Random(seed)` and the feature limits (`(0, 1)` per feature, features sorted by name), never
from the values learned, so every symbol with the same config has the same trees. `build_layout`
lets River build them once and copies each node's split feature, threshold and children into
arrays; per symbol only the masses (`l_mass`, `r_mass` per node), the window counter and the
scaler's running min/max remain, stored in one slab indexed by a symbol's slot.

`score_learn` reproduces, per event in arrival order, what `SymbolAnomalyModel.update` does with
River (river/compose/pipeline.py, river/preprocessing/scale.py, river/anomaly/hst.py):

1. score: the scaler transforms with the min/max *before* this event ((x - lo) / (hi - lo), 0.0
   when hi - lo == 0, NaN while no value is seen: River's `math.inf` defaults), then HST returns 0
   during its first window, else 1 - sum over trees of r_mass * 2**depth along the path (stopping
   after the first node whose r_mass < 0.1 * window_size) / (n_trees * window * (2**(h+1) - 1));
2. learn: the scaler takes the event's values, transforms it again, HST adds 1 to l_mass along
   each path; after `window_size` learns r_mass := l_mass, l_mass := 0 (the window pivot).

All sums are of integers below 2**53, so the float score is bit-identical to River's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

# SymbolAnomalyModel's feature names, sorted as HalfSpaceTrees sorts them when building its trees;
# the kernel computes them in this order.
FEATURES = ("log_volume", "range", "ret")
KERNEL_VERSION = 1  # bump when the kernel's state layout or arithmetic changes


@dataclass(frozen=True)
class Layout:
    """The shared tree structure of one HalfSpaceTrees config, one row per tree (DFS order)."""

    n_trees: int
    height: int
    window_size: int
    feature: np.ndarray  # int64 [n_trees, n_nodes]: index into FEATURES, -1 at a leaf
    threshold: np.ndarray  # float64 [n_trees, n_nodes]
    left: np.ndarray  # int64 [n_trees, n_nodes]: child node index, -1 at a leaf
    right: np.ndarray
    fingerprint: str  # hash of the structure: checkpoints of other trees are refused

    @property
    def n_nodes(self) -> int:
        return self.feature.shape[1]

    @property
    def size_limit(self) -> float:
        return 0.1 * self.window_size  # HalfSpaceTrees.size_limit, same float expression

    @property
    def max_score(self) -> float:
        return float(self.n_trees * self.window_size * (2 ** (self.height + 1) - 1))

    @property
    def mass_dtype(self) -> np.dtype:
        """Smallest unsigned type holding a mass (a mass never exceeds the window size)."""
        for dt in (np.uint8, np.uint16, np.uint32):
            if self.window_size <= np.iinfo(dt).max:
                return np.dtype(dt)
        return np.dtype(np.uint64)


@lru_cache(maxsize=8)
def build_layout(n_trees: int, height: int, window_size: int, seed: int) -> Layout:
    """Let River build the trees of this config and copy their structure into arrays."""
    from river import anomaly

    hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    hst.learn_one(dict.fromkeys(FEATURES, 0.5))  # builds the trees; values play no part in them
    trees = hst._tree_nodes  # noqa: SLF001 - River's own DFS node lists
    n_nodes = len(trees[0])
    feature = np.full((n_trees, n_nodes), -1, dtype=np.int64)
    threshold = np.zeros((n_trees, n_nodes), dtype=np.float64)
    left = np.full((n_trees, n_nodes), -1, dtype=np.int64)
    right = np.full((n_trees, n_nodes), -1, dtype=np.int64)
    for t, nodes in enumerate(trees):
        index = {id(node): k for k, node in enumerate(nodes)}
        for k, node in enumerate(nodes):
            if hasattr(node, "feature"):  # PaddedBranch
                feature[t, k] = FEATURES.index(node.feature)
                threshold[t, k] = node.threshold
                left[t, k] = index[id(node.children[0])]
                right[t, k] = index[id(node.children[1])]
    digest = hashlib.sha256(repr((FEATURES, n_trees, height, window_size, seed)).encode())
    for arr in (feature, threshold, left, right):
        digest.update(arr.tobytes())
    return Layout(
        n_trees, height, window_size, feature, threshold, left, right, digest.hexdigest()[:16]
    )


@njit(cache=True, inline="always")
def _scaled(x, lo, hi, out):
    """MinMaxScaler.transform_one: (x - lo) / (hi - lo), 0.0 when hi == lo."""
    for j in range(x.shape[0]):
        d = hi[j] - lo[j]
        out[j] = (x[j] - lo[j]) / d if d != 0.0 else 0.0


@njit(cache=True)
def score_learn(
    slots,
    close,
    high,
    low,
    volume,
    feature,
    threshold,
    left,
    right,
    l_mass,
    r_mass,
    counter,
    first_window,
    lo,
    hi,
    prev_close,
    seen,
    height,
    window_size,
    size_limit,
    max_score,
    out_ret,
    out_score,
    out_seen,
):
    """Score then learn each event i for the symbol in slot `slots[i]`, in order.

    Writes the event's log return, its anomaly score and the symbol's bar count after it; updates
    the slot's state arrays in place. Bars are validated upstream (close > 0, volume >= 0).
    """
    n_trees = feature.shape[0]
    nf = lo.shape[1]
    x = np.empty(nf)
    xs = np.empty(nf)
    for i in range(slots.shape[0]):
        s = slots[i]
        c = close[i]
        p = prev_close[s]
        ret = math.log(c / p) if p != 0.0 else 0.0  # `if self.prev_close` (None -> 0.0)
        prev_close[s] = c
        x[0] = math.log1p(volume[i])
        x[1] = (high[i] - low[i]) / c
        x[2] = ret
        # ---- score with the state before this event
        score = 0.0
        if not first_window[s]:
            _scaled(x, lo[s], hi[s], xs)
            total = 0  # integer sum: exact, like River's float sum of integers
            for t in range(n_trees):
                node = 0
                pw = 1
                stopped = False
                for _ in range(height):
                    r = np.int64(r_mass[s, t, node])
                    total += r * pw
                    if r < size_limit:
                        stopped = True
                        break
                    node = (
                        left[t, node]
                        if xs[feature[t, node]] < threshold[t, node]
                        else right[t, node]
                    )
                    pw <<= 1
                if not stopped:
                    total += np.int64(r_mass[s, t, node]) * pw
            score = 1.0 - total / max_score
        # ---- learn: scaler first, then the trees on the re-scaled values
        for j in range(nf):
            if x[j] < lo[s, j]:
                lo[s, j] = x[j]
            if x[j] > hi[s, j]:
                hi[s, j] = x[j]
        _scaled(x, lo[s], hi[s], xs)
        for t in range(n_trees):
            node = 0
            for _ in range(height):
                l_mass[s, t, node] += 1
                node = (
                    left[t, node] if xs[feature[t, node]] < threshold[t, node] else right[t, node]
                )
            l_mass[s, t, node] += 1
        counter[s] += 1
        if counter[s] == window_size:
            r_mass[s] = l_mass[s]
            l_mass[s] = 0
            first_window[s] = False
            counter[s] = 0
        seen[s] += 1
        out_ret[i] = ret
        out_score[i] = score
        out_seen[i] = seen[s]
