"""The feature catalog: every feature's name, family, dtype, meaning and numerical convention.

Why a pure-data module: `feast apply` imports it through `feature_repo/*.py` to generate feature
views, and the CLI, the stream jobs and the selection code all name features through it. It must
stay cheap to import (no numpy/pandas work, no compiled kernels) and it is the one place where a
feature is named. The implementations live in `transforms/families/*.py` (bar-only families, one
kernel each serving batch and online) and `transforms/context.py` (the market-context family,
registered here from its module's `CONTEXT_FEATURES` table).

Catalog order matters: `compute_features` returns the bar-only features in exactly this order. The
float families come first, in the order the kernels run (interactions last: they read the others),
then the integer calendar family.

Window parameters are declared here (tuples below) and read by the kernels, so a name and the
window it promises cannot drift apart.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

# --- window parameters (read by the kernels in transforms/families) -------------------------------
RET_WINDOWS = (1, 5, 10, 20, 60)
LOG_RET_WINDOWS = (1, 5, 20)
ROC_WINDOWS = (10, 20)
MOM_WINDOWS = (10, 20)
MOM_LONG, MOM_SKIP = 252, 21  # 12-1 momentum: close[t-21] / close[t-252] - 1
SMA_WINDOWS = (5, 10, 20, 50, 200)
EMA_WINDOWS = (5, 10, 12, 20, 26, 50, 200)
PX_EMA_RATIO_WINDOWS = (20, 50, 200)
SMA_PAIRS = ((5, 20), (50, 200))
MACD = (12, 26, 9)
RSI_WINDOWS = (7, 14, 21)
STOCH = (14, 3, 3)  # fast %K window, slow %K smoothing, %D smoothing (all SMA)
WILLR_WINDOW = 14
CCI_WINDOWS = (14, 20)
MFI_WINDOW = 14
ATR_WINDOWS = (10, 14)
NATR_WINDOW = 14
RV_WINDOWS = (5, 20, 60)
BBANDS = (20, 2)
RANGE_VOL_WINDOW = 20  # Parkinson, Garman-Klass, Rogers-Satchell
KELTNER = (20, 10, 2)  # EMA window, ATR window, ATR multiple
VOL_RATIO_WINDOWS = (5, 20, 50)
VWAP_WINDOWS = (5, 20)
ADOSC = (3, 10)
VOLUME_STATS_WINDOW = 20  # dollar_vol_20, vol_z_20
LR_STAT_WINDOWS = (10, 20, 60)
CLOSE_Z_WINDOWS = (20, 50, 200)
TRADING_DAYS = 252  # annualisation of volatilities (daily bars; see transforms/frequency.py)

Dtype = Literal["float64", "int64"]
Kind = Literal["bar", "context"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its name (snake case `<indicator>_<params>`), family, dtype and meaning."""

    name: str
    family: str
    dtype: Dtype
    description: str
    convention: str


@dataclass(frozen=True)
class FamilySpec:
    """A group of features defined by one piece of code, versioned and served as one view.

    `module` is the dotted module holding the definition; `code_hash` (lineage) hashes its source,
    the shared kernel primitives for bar families, and the feature specs themselves, so a change
    to any of them is a new definition.
    """

    name: str
    version: int
    description: str
    kind: Kind
    features: tuple[FeatureSpec, ...]
    source_tables: tuple[str, ...]
    module: str = ""

    @cached_property
    def code_hash(self) -> str:
        digest = hashlib.sha256(repr(self.features).encode())
        for module in (self.module, *(_PRIMITIVES if self.kind == "bar" else ())):
            path = _module_path(module)
            if path is not None:
                digest.update(path.read_bytes())
        return digest.hexdigest()[:12]


_PRIMITIVES = ("transforms.families.primitives",)


def _module_path(module: str) -> Path | None:
    """Source file of a module without importing it (kernel modules import numba)."""
    if not module:
        return None
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin else None


def _spec(family: str, dtype: Dtype = "float64"):
    def make(name: str, description: str, convention: str) -> FeatureSpec:
        return FeatureSpec(name, family, dtype, description, convention)

    return make


# --- returns ---------------------------------------------------------------------------------------
_f = _spec("returns")
_RETURNS = (
    *(
        _f(
            f"ret_{n}",
            f"simple return over the last {n} bars",
            f"close[t] / close[t-{n}] - 1; bars, not calendar days",
        )
        for n in RET_WINDOWS
    ),
    *(
        _f(
            f"log_ret_{n}",
            f"log return over the last {n} bars",
            f"ln(close[t] / close[t-{n}])",
        )
        for n in LOG_RET_WINDOWS
    ),
    *(
        _f(
            f"roc_{n}",
            f"rate of change over {n} bars, in percent",
            f"(close[t] / close[t-{n}] - 1) * 100; matches TA-Lib ROC",
        )
        for n in ROC_WINDOWS
    ),
    *(
        _f(
            f"mom_{n}",
            f"momentum: price change over {n} bars",
            f"close[t] - close[t-{n}]; matches TA-Lib MOM",
        )
        for n in MOM_WINDOWS
    ),
    _f(
        f"mom_{MOM_LONG}_{MOM_SKIP}",
        "12-1 momentum: return from 252 bars ago to 21 bars ago (skips the last month)",
        f"close[t-{MOM_SKIP}] / close[t-{MOM_LONG}] - 1",
    ),
    _f("gap_ret", "overnight gap: open against the previous close", "open[t] / close[t-1] - 1"),
    _f("intraday_ret", "return from the open to the close of the bar", "close[t] / open[t] - 1"),
)

# --- trend -----------------------------------------------------------------------------------------
_f = _spec("trend")
_SMA_CONV = "mean of the last {n} closes; running sum in TA-Lib's order; matches TA-Lib SMA"
_EMA_CONV = (
    "k = 2/({n}+1); seeded with the SMA of the first {n} closes (first value at bar {n}-1); "
    "matches TA-Lib EMA"
)
_MACD_CONV = (
    "TA-Lib MACD: EMA 12 and EMA 26 both start at bar 25 (the fast one seeded with the mean of "
    "closes 14..25), signal = EMA 9 of the line seeded with its SMA; all three null before bar 33"
)
_TREND = (
    *(
        _f(f"sma_{n}", f"simple moving average of close over {n} bars", _SMA_CONV.format(n=n))
        for n in SMA_WINDOWS
    ),
    *(
        _f(f"ema_{n}", f"exponential moving average of close, span {n}", _EMA_CONV.format(n=n))
        for n in EMA_WINDOWS
    ),
    *(
        _f(f"px_sma_ratio_{n}", f"close relative to its {n}-bar SMA", f"close / sma_{n}")
        for n in SMA_WINDOWS
    ),
    *(
        _f(f"px_ema_ratio_{n}", f"close relative to its {n}-bar EMA", f"close / ema_{n}")
        for n in PX_EMA_RATIO_WINDOWS
    ),
    _f("macd_{}_{}_{}".format(*MACD), "MACD line: fast EMA minus slow EMA", _MACD_CONV),
    _f("macd_signal_{}_{}_{}".format(*MACD), "MACD signal line: EMA of the MACD line", _MACD_CONV),
    _f("macd_hist_{}_{}_{}".format(*MACD), "MACD histogram: line minus signal", _MACD_CONV),
    *(
        _f(
            f"sma_ratio_{a}_{b}",
            f"{a}-bar SMA relative to the {b}-bar SMA (crossover state)",
            f"sma_{a} / sma_{b}",
        )
        for a, b in SMA_PAIRS
    ),
)

# --- oscillators -----------------------------------------------------------------------------------
_f = _spec("oscillators")
_DEGENERATE = "a window without any movement gives the neutral value {v} (TA-Lib gives 0)"
_OSCILLATORS = (
    *(
        _f(
            f"rsi_{n}",
            f"relative strength index over {n} bars, 0..100",
            f"Wilder smoothing seeded with the simple mean of the first {n} gains/losses (first "
            f"value at bar {n}); matches TA-Lib RSI; " + _DEGENERATE.format(v=50),
        )
        for n in RSI_WINDOWS
    ),
    _f(
        f"stoch_fastk_{STOCH[0]}",
        f"fast stochastic %K: close within the {STOCH[0]}-bar high-low range, 0..100",
        "100 * (close - lowest low) / (highest high - lowest low); matches TA-Lib STOCHF fast "
        "%K; " + _DEGENERATE.format(v=50),
    ),
    _f(
        "stoch_k_{}_{}".format(*STOCH[:2]),
        "slow stochastic %K (fast %K smoothed)",
        f"SMA {STOCH[1]} of fast %K {STOCH[0]}; TA-Lib STOCH(fastk={STOCH[0]}, slowk={STOCH[1]}, "
        f"slowd={STOCH[2]}, SMA) slowk, null before TA-Lib's first output (bar 17)",
    ),
    _f(
        "stoch_d_{}_{}".format(*STOCH[:2]),
        "slow stochastic %D (slow %K smoothed)",
        f"SMA {STOCH[2]} of slow %K; TA-Lib STOCH slowd",
    ),
    _f(
        f"willr_{WILLR_WINDOW}",
        f"Williams %R over {WILLR_WINDOW} bars, -100..0",
        "-100 * (highest high - close) / (highest high - lowest low); matches TA-Lib WILLR; "
        + _DEGENERATE.format(v=-50),
    ),
    *(
        _f(
            f"cci_{n}",
            f"commodity channel index over {n} bars",
            "(tp - SMA(tp)) / (0.015 * mean absolute deviation), tp = (high+low+close)/3; "
            "matches TA-Lib CCI; 0 when the deviation is 0",
        )
        for n in CCI_WINDOWS
    ),
    _f(
        f"mfi_{MFI_WINDOW}",
        f"money flow index over {MFI_WINDOW} bars, 0..100",
        "100 * positive / (positive + negative) raw money flow (tp * volume, sign of the tp "
        "change; a change below 1e-12 of tp is rounding noise and counts as unchanged, as in "
        "TA-Lib); matches TA-Lib MFI; " + _DEGENERATE.format(v=50),
    ),
)

# --- volatility ------------------------------------------------------------------------------------
_f = _spec("volatility")
_ANN = (
    f"annualised with sqrt(periods per year): sqrt({TRADING_DAYS}) for daily bars, "
    f"sqrt({TRADING_DAYS} x bars per 6.5 h session) for intraday bars (390 for 1-minute bars)"
)
_BB_CONV = (
    "middle = SMA 20, bands = middle +/- 2 population std (ddof=0) of the last 20 closes, "
    "running sums in TA-Lib's order; matches TA-Lib BBANDS"
)
_KC_CONV = (
    "middle = EMA {0} of close (TA-Lib seeding), bands = middle +/- {2} * ATR {1} (Wilder, TA-Lib)"
)
_VOLATILITY = (
    _f(
        "trange",
        "true range",
        "max(high-low, |high-prev close|, |low-prev close|); null on the first bar; matches "
        "TA-Lib TRANGE",
    ),
    *(
        _f(
            f"atr_{n}",
            f"average true range over {n} bars (Wilder)",
            f"Wilder smoothing seeded with the mean of the first {n} true ranges (bars 1..{n}); "
            "matches TA-Lib ATR",
        )
        for n in ATR_WINDOWS
    ),
    _f(
        f"natr_{NATR_WINDOW}",
        f"normalised ATR {NATR_WINDOW}: ATR as percent of close",
        f"100 * atr_{NATR_WINDOW} / close; matches TA-Lib NATR",
    ),
    _f("bb_upper_{}_{}".format(*BBANDS), "upper Bollinger band", _BB_CONV),
    _f("bb_middle_{}_{}".format(*BBANDS), "middle Bollinger band (SMA)", _BB_CONV),
    _f("bb_lower_{}_{}".format(*BBANDS), "lower Bollinger band", _BB_CONV),
    _f(
        "bb_pctb_{}_{}".format(*BBANDS),
        "Bollinger %b: where close sits between the bands",
        "(close - lower) / (upper - lower); null when the bands coincide",
    ),
    _f(
        "bb_width_{}_{}".format(*BBANDS),
        "Bollinger bandwidth relative to the middle band",
        "(upper - lower) / middle",
    ),
    _f(
        "kc_upper_{0}_{2}".format(*KELTNER),
        "upper Keltner channel",
        _KC_CONV.format(*KELTNER),
    ),
    _f(
        "kc_lower_{0}_{2}".format(*KELTNER),
        "lower Keltner channel",
        _KC_CONV.format(*KELTNER),
    ),
    _f(
        "kc_pctb_{0}_{2}".format(*KELTNER),
        "where close sits between the Keltner channels",
        "(close - lower) / (upper - lower); null when the channels coincide",
    ),
    _f("hl_range", "bar range relative to close", "(high - low) / close"),
)

# --- realised volatility ---------------------------------------------------------------------------
_f = _spec("realized_vol")
_REALIZED_VOL = (
    *(
        _f(
            f"rv_{n}",
            f"realised volatility of the last {n} 1-bar log returns",
            f"sample std (ddof=1) of log returns, two-pass over the window, {_ANN}",
        )
        for n in RV_WINDOWS
    ),
    _f(
        f"parkinson_{RANGE_VOL_WINDOW}",
        "Parkinson high-low volatility estimator",
        f"sqrt(mean(ln(high/low)^2) / (4 ln 2)) over {RANGE_VOL_WINDOW} bars, {_ANN}",
    ),
    _f(
        f"garman_klass_{RANGE_VOL_WINDOW}",
        "Garman-Klass OHLC volatility estimator",
        f"sqrt(mean(0.5 ln(high/low)^2 - (2 ln 2 - 1) ln(close/open)^2)) over "
        f"{RANGE_VOL_WINDOW} bars, {_ANN}; a negative mean (inconsistent bars) gives 0",
    ),
    _f(
        f"rogers_satchell_{RANGE_VOL_WINDOW}",
        "Rogers-Satchell drift-independent volatility estimator",
        f"sqrt(mean(ln(h/c) ln(h/o) + ln(l/c) ln(l/o))) over {RANGE_VOL_WINDOW} bars, {_ANN}; "
        "a negative mean gives 0",
    ),
)

# --- volume ----------------------------------------------------------------------------------------
_f = _spec("volume")
_VOLUME = (
    _f(
        "obv",
        "on-balance volume",
        "starts at the first bar's volume; +volume on an up close, -volume on a down close, "
        "unchanged on an equal close; matches TA-Lib OBV (depends on the history's start)",
    ),
    _f(
        "ad",
        "Chaikin accumulation/distribution line",
        "cumulative ((close-low) - (high-close)) / (high-low) * volume from the first bar, bars "
        "with high == low add nothing; matches TA-Lib AD (depends on the history's start)",
    ),
    _f(
        "adosc_{}_{}".format(*ADOSC),
        "Chaikin A/D oscillator",
        "EMA 3 - EMA 10 of the A/D line, both seeded with the first A/D value, first value at "
        "bar 9; matches TA-Lib ADOSC",
    ),
    _f("log_volume", "log of volume", "ln(1 + volume)"),
    _f(
        "clv",
        "close location value within the bar",
        "((close-low) - (high-close)) / (high-low), in -1..1; null if high == low",
    ),
)

# --- volume statistics -----------------------------------------------------------------------------
_f = _spec("volume_stats")
_VOLUME_STATS = (
    *(
        _f(
            f"vol_ratio_{n}",
            f"volume relative to its {n}-bar average",
            f"volume / mean(volume over the last {n} bars, this one included); null if that "
            "mean is 0",
        )
        for n in VOL_RATIO_WINDOWS
    ),
    *(
        _f(
            f"vwap_{n}",
            f"volume-weighted average typical price over the last {n} bars",
            "sum(tp * volume) / sum(volume), tp = (high+low+close)/3, exact sums over the "
            "window; null if no volume",
        )
        for n in VWAP_WINDOWS
    ),
    _f(
        f"px_vwap_ratio_{VWAP_WINDOWS[-1]}",
        f"close relative to the {VWAP_WINDOWS[-1]}-bar VWAP",
        f"close / vwap_{VWAP_WINDOWS[-1]}",
    ),
    _f(
        "vwap_session",
        "regular-session VWAP (09:30 to the XNYS close, early closes included)",
        "sum(tp * volume) / sum(volume) over the regular-session bars of the bar's XNYS session "
        "so far (a bar is in the session when its end lies in (open, close]); extended-hours "
        "bars neither enter nor reset it and get null; for daily bars this is the bar's typical "
        "price; null if no volume yet",
    ),
    _f(
        f"dollar_vol_{VOLUME_STATS_WINDOW}",
        f"average traded value over {VOLUME_STATS_WINDOW} bars",
        "mean(close * volume)",
    ),
    _f(
        f"vol_z_{VOLUME_STATS_WINDOW}",
        f"z-score of volume against its last {VOLUME_STATS_WINDOW} bars",
        "(volume - mean) / sample std (ddof=1), window includes this bar; null if std is 0",
    ),
)

# --- rolling statistics ----------------------------------------------------------------------------
_f = _spec("rolling_stats")
_LR = "of the last {n} 1-bar log returns ln(close[t]/close[t-1]), this bar's included"
_ROLLING = (
    *(
        spec
        for n in LR_STAT_WINDOWS
        for spec in (
            _f(f"lr_mean_{n}", f"rolling mean {_LR.format(n=n)}", "two-pass over the window"),
            _f(f"lr_std_{n}", f"rolling std {_LR.format(n=n)}", "sample std (ddof=1), two-pass"),
            _f(f"lr_min_{n}", f"rolling minimum {_LR.format(n=n)}", "exact over the window"),
            _f(f"lr_max_{n}", f"rolling maximum {_LR.format(n=n)}", "exact over the window"),
            _f(
                f"lr_z_{n}",
                f"z-score of this bar's log return within its {n}-bar window",
                f"(lr - lr_mean_{n}) / lr_std_{n}; null if the std is 0",
            ),
            _f(
                f"lr_skew_{n}",
                f"rolling skewness {_LR.format(n=n)}",
                "adjusted Fisher-Pearson G1 = sqrt(n(n-1))/(n-2) * m3/m2^1.5 (as pandas "
                "rolling skew, scipy skew bias=False), central moments two-pass; null if m2 is 0",
            ),
        )
    ),
    *(
        _f(
            f"close_z_{n}",
            f"z-score of close within its last {n} closes",
            "(close - mean) / sample std (ddof=1), window includes this bar, two-pass; null if "
            "the std is 0",
        )
        for n in CLOSE_Z_WINDOWS
    ),
)

# --- interactions ----------------------------------------------------------------------------------
_f = _spec("interactions")
_INTERACTIONS = (
    _f(
        "move_atr_14",
        "today's close-to-close move in ATR units: is the move unusual for this stock?",
        "(close - previous close) / atr_14",
    ),
    _f(
        "ret_20_vol_adj",
        "risk-adjusted 20-bar momentum (a t-statistic-like trend strength)",
        "ret_20 / (lr_std_20 * sqrt(20))",
    ),
    _f(
        "rv_ratio_5_60",
        "short- over long-horizon realised volatility: volatility regime shifts",
        "rv_5 / rv_60",
    ),
    _f(
        "ret_1_x_vol_ratio_20",
        "volume-confirmed move: a return on heavy volume counts more",
        "ret_1 * vol_ratio_20",
    ),
    _f(
        "sma_spread_50_200_atr",
        "golden/death-cross spread in volatility units, comparable across stocks",
        "(sma_50 - sma_200) / atr_14",
    ),
    _f(
        "bb_kc_squeeze_20",
        "Bollinger width over Keltner width: below 1 is a volatility squeeze",
        "(bb_upper_20_2 - bb_lower_20_2) / (kc_upper_20_2 - kc_lower_20_2)",
    ),
)

# --- calendar --------------------------------------------------------------------------------------
_f = _spec("calendar", "int64")
_LOCAL = "of the bar's America/New_York date"
_SESSIONS = "XNYS sessions (exchange-calendars via finfeast.sessions; holidays published ahead)"
_CALENDAR = (
    _f("day_of_week", f"day of week {_LOCAL}", "Monday=0 .. Sunday=6"),
    _f("day_of_month", f"day of month {_LOCAL}", "1..31"),
    _f("day_of_year", f"day of year {_LOCAL}", "1..366"),
    _f("week_of_year", f"ISO week number {_LOCAL}", "ISO 8601, 1..53"),
    _f("month", f"month {_LOCAL}", "1..12"),
    _f("quarter", f"quarter {_LOCAL}", "1..4"),
    _f(
        "is_month_start",
        "first session of the month",
        f"1 if the date is a session and no earlier {_SESSIONS} fall in its month",
    ),
    _f(
        "is_month_end",
        "last session of the month",
        f"1 if the date is a session and no later {_SESSIONS} fall in its month",
    ),
    _f("is_quarter_end", "last session of a quarter", "is_month_end and month in (3, 6, 9, 12)"),
    _f("is_year_end", "last session of the year", "is_month_end and month == 12"),
    _f(
        "bdays_to_month_end",
        "sessions left in the month after this date",
        f"count of later {_SESSIONS} in the month; 0 on the last one; -1 outside the published "
        "schedule (before 1990 or beyond about a year ahead)",
    ),
)

# Features stated as annualised (transforms/frequency.py rescales them to a frame's bar frequency)
ANNUALISED: tuple[str, ...] = (
    *(f"rv_{n}" for n in RV_WINDOWS),
    *(f"{p}_{RANGE_VOL_WINDOW}" for p in ("parkinson", "garman_klass", "rogers_satchell")),
)

_BAR_SOURCES = ("bars",)
_BAR_FAMILY_ROWS: tuple[tuple[str, str, tuple[FeatureSpec, ...]], ...] = (
    ("returns", "Returns and momentum over several horizons.", _RETURNS),
    ("trend", "Moving averages, price-to-average ratios and MACD.", _TREND),
    ("oscillators", "Bounded momentum oscillators: RSI, stochastics, %R, CCI, MFI.", _OSCILLATORS),
    ("volatility", "True range, ATR/NATR, Bollinger and Keltner channels, bar range.", _VOLATILITY),
    (
        "realized_vol",
        "Realised volatility of returns and Parkinson/Garman-Klass/Rogers-Satchell estimators.",
        _REALIZED_VOL,
    ),
    ("volume", "Volume flow: OBV, Chaikin A/D line and oscillator, log volume, CLV.", _VOLUME),
    (
        "volume_stats",
        "Relative volume, rolling and session VWAPs, traded value, volume z-score.",
        _VOLUME_STATS,
    ),
    ("rolling_stats", "Rolling moments and extremes of log returns; z-scores of close.", _ROLLING),
    (
        "interactions",
        "A few named combinations of other bar features, each with a reason.",
        _INTERACTIONS,
    ),
    (
        "calendar",
        "Calendar attributes of the bar's exchange-local date and the XNYS session calendar.",
        _CALENDAR,
    ),
)

FAMILIES: dict[str, FamilySpec] = {
    name: FamilySpec(
        name=name,
        version=1,
        description=description,
        kind="bar",
        features=features,
        source_tables=_BAR_SOURCES,
        module=f"transforms.families.{name}",
    )
    for name, description, features in _BAR_FAMILY_ROWS
}


def register_family(family: FamilySpec) -> FamilySpec:
    """Add a family (e.g. a context family) to the catalog; names must stay unique."""
    if family.name in FAMILIES:
        raise ValueError(f"feature family {family.name!r} is already registered")
    taken = {f.name for fam in FAMILIES.values() for f in fam.features}
    clash = sorted(taken.intersection(f.name for f in family.features))
    if clash:
        raise ValueError(f"family {family.name!r} redefines features {clash}")
    FAMILIES[family.name] = family
    _FEATURES.update({f.name: f for f in family.features})
    return family


def bar_features() -> list[FeatureSpec]:
    """Features computed from a symbol's own bars (`compute_features` output order)."""
    return [f for fam in FAMILIES.values() if fam.kind == "bar" for f in fam.features]


def context_features() -> list[FeatureSpec]:
    """Features that need other tables (index, macro, FX, listings)."""
    return [f for fam in FAMILIES.values() if fam.kind == "context" for f in fam.features]


def all_features() -> list[FeatureSpec]:
    return [f for fam in FAMILIES.values() for f in fam.features]


_FEATURES: dict[str, FeatureSpec] = {f.name: f for f in all_features()}


def feature(name: str) -> FeatureSpec:
    try:
        return _FEATURES[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r} (see transforms.catalog)") from None


def family_of(name: str) -> str:
    return feature(name).family


def bar_float_names() -> list[str]:
    """Float bar features in kernel output order (every bar family except calendar)."""
    return [f.name for f in bar_features() if f.dtype == "float64"]


def _register_context_modules() -> None:
    """Register context families from modules exposing FAMILY, CONTEXT_FEATURES, SOURCE_TABLES.

    The table is `{name: (description, convention)}`; FAMILY_VERSION and FAMILY_DESCRIPTION are
    optional. A missing module is simply not registered.
    """
    import importlib

    for module_name in CONTEXT_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        name = module.FAMILY
        features = tuple(
            FeatureSpec(feat, name, "float64", desc, conv)
            for feat, (desc, conv) in module.CONTEXT_FEATURES.items()
        )
        register_family(
            FamilySpec(
                name=name,
                version=int(getattr(module, "FAMILY_VERSION", 1)),
                description=getattr(
                    module, "FAMILY_DESCRIPTION", (module.__doc__ or name).splitlines()[0]
                ),
                kind="context",
                features=features,
                source_tables=tuple(module.SOURCE_TABLES),
                module=module_name,
            )
        )


CONTEXT_MODULES: tuple[str, ...] = ("transforms.context",)
_register_context_modules()
