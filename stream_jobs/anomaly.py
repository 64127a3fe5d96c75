"""River anomaly scores and drift flags per symbol, learned online from the bar stream.

Why River: the models learn one event at a time with O(1) state, the same shape as the stream job.
Per symbol, `MinMaxScaler | HalfSpaceTrees` scores each bar's (log return, log volume, relative
range) before learning it (score-then-learn: a bar never scores against a model that has already
seen it, so there is no look-ahead), and River's ADWIN watches the anomaly score for a change in
its level (`drift_flag` on the bar where ADWIN cuts its window, `drift_count` so far).
HalfSpaceTrees scores 0 until its first window (250 bars) fills; those bars are flagged `warm=0`.

Why ADWIN on the score and not on the returns (its input until 2026-12-02): ADWIN's cut test is
a Bernstein bound for values in [0, 1]; its additive term (about 2/3 ln(1/delta) / n) is far
above any mean shift of raw minute log returns (~1e-4), so it never fired on any real series in
shared/data and both columns were constant 0. The score is in [0, 1] by construction; on the
replay week ADWIN cuts 4-16 times per symbol, at session opens and closes and on news days: the
model's view of the market changed. Drift of a model's output is River's own use of ADWIN.

`SymbolAnomalyModel` is that definition, in River, one bar at a time (the bench's baseline).
`AnomalyScorer` computes the same numbers for a whole micro-batch in one compiled call
(`stream_jobs.hst_kernel`: the trees River built, as arrays; per symbol only masses, counters and
scaler bounds in a slab) and keeps River's own ADWIN per symbol (~0.2 us per update). Its state
is a handful of numpy arrays, which is what a checkpoint stores (`snapshot` / `restore`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from finfeast.errors import FinfeastError
from finfeast.state_arrays import adopt, owned, release
from stream_jobs import hst_kernel
from stream_jobs.hst_kernel import FEATURES, Layout, build_layout

DEFAULT_THRESHOLD = 0.97
HST_WINDOW = 250
DRIFT_INPUT = "anomaly_score"  # what ADWIN watches (a checkpoint's ADWINs must have seen it)
SCORE_COLUMNS = (
    "bar_log_return",
    "anomaly_score",
    "is_anomaly",
    "drift_flag",
    "drift_count",
    "anomaly_warm",
)


@dataclass
class AnomalyConfig:
    """Model settings; `seed` makes scores reproducible run to run."""

    threshold: float = DEFAULT_THRESHOLD
    n_trees: int = 10
    height: int = 8
    window_size: int = HST_WINDOW
    adwin_delta: float = 0.002
    seed: int = 42

    def layout(self) -> Layout:
        return build_layout(self.n_trees, self.height, self.window_size, self.seed)


class AnomalyStateMismatch(FinfeastError):
    """A scorer snapshot taken with another config or tree layout."""


class SymbolAnomalyModel:
    """River's pipeline for one symbol, one bar at a time: the definition `AnomalyScorer`
    reproduces (and the bench's baseline)."""

    def __init__(self, config: AnomalyConfig) -> None:
        from river import anomaly, drift, preprocessing

        self.config = config
        self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=config.n_trees,
            height=config.height,
            window_size=config.window_size,
            seed=config.seed,
        )
        self.adwin = drift.ADWIN(delta=config.adwin_delta)
        self.prev_close: float | None = None
        self.seen = 0
        self.drifts = 0

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any]:
        close = float(bar["close"])
        ret = math.log(close / self.prev_close) if self.prev_close else 0.0
        self.prev_close = close
        x = {
            "ret": ret,
            "log_volume": math.log1p(float(bar["volume"])),
            "range": (float(bar["high"]) - float(bar["low"])) / close,
        }
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        self.adwin.update(score)
        drift = bool(self.adwin.drift_detected)
        self.drifts += drift
        self.seen += 1
        warm = self.seen > self.config.window_size
        return {
            "bar_log_return": ret,
            "anomaly_score": score,
            "is_anomaly": int(warm and score >= self.config.threshold),
            "drift_flag": int(drift),
            "drift_count": self.drifts,
            "anomaly_warm": int(warm),
        }


# one value per slot (besides the masses and the scaler bounds)
_SCALARS = ("counter", "first_window", "prev_close", "seen", "drifts")


class AnomalyScorer:
    """Per-symbol anomaly state in one slab (a slot per symbol, created on first sight)."""

    def __init__(self, config: AnomalyConfig | None = None, capacity: int = 64) -> None:
        self.config = config or AnomalyConfig()
        self.layout = self.config.layout()
        self.slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._adwins: list[Any] = []
        self._cap = 0
        lay = self.layout
        self.l_mass = np.zeros((0, lay.n_trees, lay.n_nodes), dtype=lay.mass_dtype)
        self.r_mass = np.zeros_like(self.l_mass)
        self.lo = np.zeros((0, len(FEATURES)))
        self.hi = np.zeros((0, len(FEATURES)))
        self.counter = np.zeros(0, dtype=np.int64)
        self.first_window = np.zeros(0, dtype=np.bool_)
        self.prev_close = np.zeros(0)
        self.seen = np.zeros(0, dtype=np.int64)
        self.drifts = np.zeros(0, dtype=np.int64)
        self._grow(capacity)

    # ---- slots -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.slot_of

    def _grow(self, capacity: int) -> None:
        extra = capacity - self._cap
        if extra <= 0:
            return

        def more(arr: np.ndarray, fill: Any) -> np.ndarray:
            pad = np.full((extra, *arr.shape[1:]), fill, dtype=arr.dtype)
            return np.concatenate([arr, pad])

        self.l_mass = more(self.l_mass, 0)
        self.r_mass = more(self.r_mass, 0)
        self.lo = more(self.lo, math.inf)  # River's stats.Min / stats.Max start at +-inf
        self.hi = more(self.hi, -math.inf)
        self.counter = more(self.counter, 0)
        self.first_window = more(self.first_window, True)
        self.prev_close = more(self.prev_close, 0.0)
        self.seen = more(self.seen, 0)
        self.drifts = more(self.drifts, 0)
        self._adwins.extend([None] * extra)
        self._free.extend(range(capacity - 1, self._cap - 1, -1))  # lowest slot popped first
        self._cap = capacity

    def _reset(self, slot: int) -> None:
        from river import drift

        self.l_mass[slot] = 0
        self.r_mass[slot] = 0
        self.lo[slot] = math.inf
        self.hi[slot] = -math.inf
        self.counter[slot] = 0
        self.first_window[slot] = True
        self.prev_close[slot] = 0.0
        self.seen[slot] = 0
        self.drifts[slot] = 0
        self._adwins[slot] = drift.ADWIN(delta=self.config.adwin_delta)

    def _new_slot(self, symbol: str, fresh: bool = True) -> int:
        """A free slot for `symbol`; `fresh`: with a new model (False: the caller sets every
        per-slot field, as `restore` does)."""
        if not self._free:
            self._grow(max(2 * self._cap, 64))
        slot = self._free.pop()
        if fresh:
            self._reset(slot)
        self.slot_of[symbol] = slot
        return slot

    def slots(self, symbols: Iterable[str]) -> np.ndarray:
        """Slot per symbol (new symbols get a fresh model)."""
        get = self.slot_of.get
        out = []
        for s in symbols:
            slot = get(s)
            out.append(self._new_slot(s) if slot is None else slot)
        return np.array(out, dtype=np.int64)

    def forget(self, symbol: str) -> None:
        slot = self.slot_of.pop(symbol, None)
        if slot is not None:
            self._adwins[slot] = None
            self._free.append(slot)

    # ---- scoring ---------------------------------------------------------------------
    def score_arrays(
        self,
        symbols: Iterable[str],
        close: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        volume: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Score then learn a micro-batch in arrival order; one column per `SCORE_COLUMNS` name.

        Bars must be validated (`stream_jobs.schemas`: close > 0, volume >= 0); anything else is
        refused with ValueError before any state changes.
        """
        close = np.ascontiguousarray(close, dtype=np.float64)
        high = np.ascontiguousarray(high, dtype=np.float64)
        low = np.ascontiguousarray(low, dtype=np.float64)
        volume = np.ascontiguousarray(volume, dtype=np.float64)
        n = len(close)
        if not (len(high) == len(low) == len(volume) == n):
            raise ValueError("close, high, low and volume must have the same length")
        if n and not (bool((close > 0).all()) and bool((volume >= 0).all())):
            raise ValueError("anomaly scoring needs validated bars (close > 0, volume >= 0)")
        if n and not bool(np.isfinite(high - low).all()):
            raise ValueError("anomaly scoring needs finite high and low")
        slots = self.slots(symbols)
        if len(slots) != n:
            raise ValueError("one symbol per bar expected")
        lay = self.layout
        ret = np.empty(n)
        score = np.empty(n)
        seen = np.empty(n, dtype=np.int64)
        hst_kernel.score_learn(
            slots,
            close,
            high,
            low,
            volume,
            lay.feature,
            lay.threshold,
            lay.left,
            lay.right,
            self.l_mass,
            self.r_mass,
            self.counter,
            self.first_window,
            self.lo,
            self.hi,
            self.prev_close,
            self.seen,
            lay.height,
            lay.window_size,
            lay.size_limit,
            lay.max_score,
            ret,
            score,
            seen,
        )
        flags = np.zeros(n, dtype=np.int64)
        counts = np.empty(n, dtype=np.int64)
        adwins = self._adwins
        drifts = self.drifts
        for i, (slot, s) in enumerate(zip(slots.tolist(), score.tolist(), strict=True)):
            adwin = adwins[slot]
            adwin.update(s)
            if adwin.drift_detected:
                flags[i] = 1
                drifts[slot] += 1
            counts[i] = drifts[slot]
        warm = (seen > lay.window_size).astype(np.int64)
        return {
            "bar_log_return": ret,
            "anomaly_score": score,
            "is_anomaly": warm & (score >= self.config.threshold),
            "drift_flag": flags,
            "drift_count": counts,
            "anomaly_warm": warm,
        }

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any]:
        """One bar (a batch of one): the same values `SymbolAnomalyModel.update` returns."""
        out = self.score_arrays(
            [bar["symbol"]],
            np.array([float(bar["close"])]),
            np.array([float(bar["high"])]),
            np.array([float(bar["low"])]),
            np.array([float(bar["volume"])]),
        )
        return {k: v[0].item() for k, v in out.items()}

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernel now, not in the first batch."""
        probe = AnomalyScorer(self.config, capacity=1)
        probe.score_arrays(["_warmup"], *(np.ones(1),) * 3, np.zeros(1))

    # ---- checkpoint state ------------------------------------------------------------
    def snapshot(self, symbols: Iterable[str]) -> dict[str, Any]:
        """The state of `symbols` (those this scorer has) as numpy arrays (copies) + River's
        ADWINs (the live objects, not copies: pickle the snapshot, as a checkpoint capture does,
        before this scorer folds more bars)."""
        names = [s for s in symbols if s in self.slot_of]
        idx = np.array([self.slot_of[s] for s in names], dtype=np.int64)
        return {
            "config": asdict(self.config),
            "layout": self.layout.fingerprint,
            "symbols": names,
            "l_mass": self.l_mass[idx],
            "r_mass": self.r_mass[idx],
            "lo": self.lo[idx],
            "hi": self.hi[idx],
            **{k: getattr(self, k)[idx] for k in _SCALARS},
            "adwin": [self._adwins[i] for i in idx.tolist()],
        }

    def check(self, state: Mapping[str, Any]) -> None:
        """AnomalyStateMismatch unless `state` was taken with this config and tree layout."""
        if state["config"] != asdict(self.config) or state["layout"] != self.layout.fingerprint:
            raise AnomalyStateMismatch(
                f"anomaly state of config {state['config']} / layout {state['layout']}, "
                f"running {asdict(self.config)} / {self.layout.fingerprint}"
            )
        if state["l_mass"].shape[1:] != self.l_mass.shape[1:]:
            raise AnomalyStateMismatch("anomaly state has another tree shape")

    def restore(self, state: Mapping[str, Any]) -> None:
        """Put a `snapshot` back (its symbols replace any state this scorer has for them)."""
        self.check(state)
        names = list(state["symbols"])
        # River's ADWINs are live objects: the first restore of a state takes them (as its
        # arrays, `_take`), a later one of the same state gets copies, so two scorers never
        # share a model. A state's masses lose their write flag once restored (`adopt`).
        adwins = (
            state["adwin"] if owned(state["l_mass"]) else [copy.deepcopy(a) for a in state["adwin"]]
        )
        if not self.slot_of and len(set(names)) == len(names):
            self._take(state, names, adwins)
            return
        release(state["l_mass"])
        # Every per-slot field is overwritten below: new symbols take free slots as they are
        # (no fresh model each, which `slots` would build and this would throw away), after one
        # growth to the size needed (not doubling step by step).
        new = [s for s in dict.fromkeys(state["symbols"]) if s not in self.slot_of]
        if len(new) > len(self._free):
            self._grow(max(self._cap + len(new) - len(self._free), 2 * self._cap, 64))
        for s in new:
            self._new_slot(s, fresh=False)
        idx = self.slots(state["symbols"])
        self.l_mass[idx] = state["l_mass"]
        self.r_mass[idx] = state["r_mass"]
        self.lo[idx] = state["lo"]
        self.hi[idx] = state["hi"]
        for k in _SCALARS:
            getattr(self, k)[idx] = state[k]
        for slot, adwin in zip(idx.tolist(), adwins, strict=True):
            self._adwins[slot] = adwin

    def _take(self, state: Mapping[str, Any], names: list[str], adwins: list[Any]) -> None:
        """Restore into a scorer with no symbol: the snapshot's arrays become the slab (taken
        over, not copied, when writable: `adopt`); slot i is the i-th symbol, no free slot."""
        fields = ("l_mass", "r_mass", "lo", "hi", *_SCALARS)
        if any(len(state[k]) != len(names) for k in (*fields, "adwin")):
            raise AnomalyStateMismatch("anomaly state: arrays and symbols differ in length")
        for k in fields:
            setattr(self, k, adopt(state[k], getattr(self, k).dtype))
        self._adwins = list(adwins)
        self.slot_of = {s: i for i, s in enumerate(names)}
        self._free = []
        self._cap = len(names)
