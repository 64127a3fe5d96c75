"""Market context and cross-section features: a symbol's bars measured against the market.

Why apart from the bar-only families: these features need other tables (the index's bars, `macro`,
`fx_rates`, `listings`) and, for the sector-relative return, every symbol of a session at once.
They are computed in two steps so the per-symbol part can be partitioned (Dask) with results
identical to one process:

1. `prepare_context(bars, macro, fx_rates, listings)` builds the market-wide inputs once: index
   returns, per-(sector, session) mean returns, and one derived series per macro/FX source.
2. `context_features(bars, ctx)` joins them onto any subset of symbols' bars.
`compute_context_features(...)` does both (the sibling of `transforms.compute_features`).

Point in time: every join is an as-of join on `event_timestamp` that only looks backwards
(`direction="backward"`, exact matches allowed: a value stamped at the same instant is known).
Index returns and sector means are matched on the exact session timestamp (a stale index return
would be wrong, not late); macro and FX values may be up to `MACRO_TOLERANCE` old (weekends,
holidays, ECB vs NYSE calendars), older values are null. Changes and returns of macro/FX series are
computed on the series' own observations before the join, so they never use a future observation.

Conventions (all float64, warm-up and missing inputs are null, never 0):
- returns are simple: close[t] / close[t-n] - 1 over the symbol's own previous n bars;
- `beta_spx_60`, `corr_spx_60`: sample covariance / variance (ddof=1) of 1-bar returns of the
  symbol and ^GSPC over the symbol's last 60 bars; null unless all 60 pairs exist;
- sector means are equal-weight over the symbols whose sector known at that session is the
  same (the symbol itself included), null with fewer than `MIN_SECTOR_MEMBERS`. The sector of a
  bar is the GICS sector of the latest `listings` row of its symbol at or before the bar
  (point-in-time change rows built from the S&P 500 constituents history, see
  ingestion/listings.py): GOOGL in 2015 is "Information Technology", not today's "Communication
  Services", and symbols that left the index (FB, TWX) keep the sector last published;
- `in_sp500`: 1 if the symbol is in the latest constituents snapshot known at the bar, 0 if it
  is not (an index, ETF or non-member), null before the first snapshot (2012-12-27T20:17:58Z) or
  without a listings table with membership: never a guess;
- FX pairs are read direct, inverted, or crossed through EUR on identical timestamps, whichever
  series has most observations (per construction, the source with most rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finfeast.errors import FinfeastError

INDEX_SYMBOL = "^GSPC"
BETA_WINDOW = 60
MIN_SECTOR_MEMBERS = 3
MACRO_TOLERANCE = pd.Timedelta(days=5)
SOURCE_TABLES: tuple[str, ...] = ("bars", "macro", "fx_rates", "listings")
FAMILY = "market_context"

_SECTOR_CONV = f"sector known at the bar (as-of listings), >= {MIN_SECTOR_MEMBERS} members"

# name -> (description, convention): the catalog builds FeatureSpecs from this table.
CONTEXT_FEATURES: dict[str, tuple[str, str]] = {
    "ret_rel_spx_1": (
        "1-bar return minus the S&P 500 (^GSPC) 1-bar return",
        "simple returns, exact session match",
    ),
    "ret_rel_spx_5": (
        "5-bar return minus the S&P 500 5-bar return",
        "simple returns, exact session match",
    ),
    "ret_rel_spx_20": (
        "20-bar return minus the S&P 500 20-bar return",
        "simple returns, exact session match",
    ),
    "beta_spx_60": (
        "rolling 60-bar beta of 1-bar returns to the S&P 500",
        "sample cov/var (ddof=1), full window required",
    ),
    "corr_spx_60": (
        "rolling 60-bar correlation of 1-bar returns with the S&P 500",
        "Pearson, full window required",
    ),
    "ret_rel_sector_1": (
        "1-bar return minus the equal-weight mean of its GICS sector that session",
        _SECTOR_CONV,
    ),
    "ret_rel_sector_20": (
        "20-bar return minus the sector's mean 20-bar return that session",
        _SECTOR_CONV,
    ),
    "in_sp500": (
        "S&P 500 membership as known at the bar: 1 listed, 0 not listed",
        "latest constituents snapshot at or before the bar (its commit time); null before the "
        "first snapshot 2012-12-27 and without listings",
    ),
    "vix": ("CBOE VIX level, latest value known at the bar", "as-of join, max age 5 days"),
    "vix_chg_1": (
        "VIX change since the previous VIX observation, in points",
        "difference on VIX's own series, then as-of",
    ),
    "vix_chg_5": (
        "VIX change over its last 5 observations, in points",
        "difference on VIX's own series, then as-of",
    ),
    "wti_ret_1": ("WTI crude 1-observation return", "simple return, non-positive prices -> null"),
    "wti_ret_5": ("WTI crude 5-observation return", "simple return, non-positive prices -> null"),
    "brent_ret_1": (
        "Brent crude 1-observation return",
        "simple return, non-positive prices -> null",
    ),
    "eurusd_ret_1": ("EUR/USD (USD per EUR) 1-observation return", "ECB-style fixing, as-of join"),
    "eurusd_ret_5": ("EUR/USD 5-observation return", "ECB-style fixing, as-of join"),
    "usdjpy_ret_1": (
        "USD/JPY (JPY per USD) 1-observation return",
        "crossed through EUR when not direct",
    ),
    "gbpusd_ret_1": (
        "GBP/USD (USD per GBP) 1-observation return",
        "crossed through EUR when not direct",
    ),
}
FEATURE_NAMES: tuple[str, ...] = tuple(CONTEXT_FEATURES)

# macro series -> (derived column, kind, periods); kind "diff" (points) or "ret" (simple return)
_MACRO_DERIVED: dict[str, tuple[tuple[str, str, int], ...]] = {
    "VIX": (("vix", "level", 0), ("vix_chg_1", "diff", 1), ("vix_chg_5", "diff", 5)),
    "WTI": (("wti_ret_1", "ret", 1), ("wti_ret_5", "ret", 5)),
    "BRENT": (("brent_ret_1", "ret", 1),),
}
# (base, quote) -> derived columns
_FX_DERIVED: dict[tuple[str, str], tuple[tuple[str, str, int], ...]] = {
    ("EUR", "USD"): (("eurusd_ret_1", "ret", 1), ("eurusd_ret_5", "ret", 5)),
    ("USD", "JPY"): (("usdjpy_ret_1", "ret", 1),),
    ("GBP", "USD"): (("gbpusd_ret_1", "ret", 1),),
}


@dataclass(frozen=True)
class MarketContext:
    """Market-wide inputs of the context family, built once and joined per symbol."""

    index_returns: pd.DataFrame  # event_timestamp, spx_ret_1, spx_ret_5, spx_ret_20
    listings: pd.DataFrame | None  # on (int64 ns), symbol, sector, in_sp500: sorted by `on`
    membership_from: int | None  # ns of the first snapshot listing anyone (None: unknown)
    sector_means: pd.DataFrame  # sector, event_timestamp, sector_ret_1, sector_ret_20
    series: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> event_timestamp + cols


def _sorted_bars(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("symbol", "event_timestamp", "close") if c not in bars.columns]
    if missing:
        raise FinfeastError(f"context features: bars lack column(s) {', '.join(missing)}")
    out = bars.loc[:, ["symbol", "event_timestamp", "close"]]
    return out.sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)


def _lagged_return(codes: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """close[t]/close[t-n] - 1 within each symbol (rows sorted by symbol, time)."""
    out = np.full(len(close), np.nan)
    if len(close) > n:
        same = codes[n:] == codes[:-n]
        prev = close[:-n]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(same & (prev > 0), close[n:] / prev - 1.0, np.nan)
        out[n:] = ratio
    return out


def _returns(sorted_bars: pd.DataFrame, windows: tuple[int, ...]) -> dict[int, np.ndarray]:
    codes = pd.factorize(sorted_bars["symbol"])[0]
    close = sorted_bars["close"].to_numpy(dtype="float64")
    return {n: _lagged_return(codes, close, n) for n in windows}


def _derive(values: pd.Series, kind: str, periods: int) -> pd.Series:
    if kind == "level":
        return values
    if kind == "diff":
        return values - values.shift(periods)
    prev = values.shift(periods)
    return (values / prev - 1.0).where((prev > 0) & (values > 0))


def _series_frame(
    ts: pd.Series, values: pd.Series, derived: tuple[tuple[str, str, int], ...]
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"event_timestamp": ts.reset_index(drop=True), "value": values.to_numpy("float64")}
    )
    frame = frame.dropna().drop_duplicates("event_timestamp", keep="last")
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    out = frame[["event_timestamp"]].copy()
    for col, kind, periods in derived:
        out[col] = _derive(frame["value"], kind, periods).to_numpy("float64")
    return out


def _fx_pair(
    pairs: dict[tuple[str, str], pd.DataFrame], base: str, quote: str
) -> pd.DataFrame | None:
    """Rate series (event_timestamp, rate) for base/quote: direct, inverted or crossed via EUR,
    whichever has the most observations (a daily ECB cross beats a monthly direct series).
    `pairs` holds the fx_rates rows grouped by (base, quote)."""

    def direct(b: str, q: str) -> pd.DataFrame | None:
        rows = pairs.get((b, q))
        if rows is None or rows.empty:
            return None
        if "source" in rows.columns:
            counts = rows["source"].value_counts()
            best = sorted(counts[counts == counts.max()].index)[0]
            rows = rows[rows["source"] == best]
        return rows[["event_timestamp", "rate"]].drop_duplicates("event_timestamp", keep="last")

    candidates = []
    got = direct(base, quote)
    if got is not None:
        candidates.append(got)
    inv = direct(quote, base)
    if inv is not None:
        candidates.append(inv.assign(rate=1.0 / inv["rate"]))
    if "EUR" not in (base, quote):
        eb, eq = direct("EUR", base), direct("EUR", quote)
        if eb is not None and eq is not None:
            both = eb.merge(eq, on="event_timestamp", suffixes=("_b", "_q"))
            rate = both["rate_q"] / both["rate_b"]
            candidates.append(
                pd.DataFrame({"event_timestamp": both["event_timestamp"], "rate": rate})
            )
    # most observations first; ties keep the order above (direct, inverted, crossed)
    return max(candidates, key=len) if candidates else None


def _listing_states(listings: pd.DataFrame | None) -> tuple[pd.DataFrame | None, int | None]:
    """The listings rows as as-of join input: `on` (int64 UTC ns of event_timestamp), symbol,
    sector (blank -> null), in_sp500 (float 1/0, null when the table has no membership), sorted
    by time; plus the knowledge time of the first snapshot that lists any member."""
    if listings is None or not {"symbol", "sector"} <= set(listings.columns) or not len(listings):
        return None, None
    if "event_timestamp" not in listings.columns:
        raise FinfeastError(
            "context features: listings lack event_timestamp (a listing is known from its "
            "snapshot time; see ingestion/listings.py)"
        )
    sector = listings["sector"].astype(object)
    sector = sector.where(sector.notna() & (sector.astype(str).str.strip() != ""), None)
    if "in_sp500" in listings.columns:
        member = listings["in_sp500"].astype("float64").to_numpy()
    else:
        member = np.full(len(listings), np.nan)
    pit = pd.DataFrame(
        {
            "on": _ns(listings["event_timestamp"]),
            "symbol": listings["symbol"].astype(str).to_numpy(),
            "sector": sector.to_numpy(),
            "in_sp500": member,
        }
    )
    pit = pit.sort_values("on", kind="stable").reset_index(drop=True)
    listed = pit["on"][pit["in_sp500"] == 1.0]
    return pit, (int(listed.min()) if len(listed) else None)


def _asof_listing(
    sb: pd.DataFrame, pit: pd.DataFrame | None, membership_from: int | None
) -> pd.DataFrame:
    """Per bar (rows of `sb`, same order): the sector and in_sp500 of its symbol's latest listings
    row at or before the bar (exact time allowed). A bar at or after the first snapshot whose
    symbol has no row yet is not a member (0): the snapshots are complete lists."""
    n = len(sb)
    if pit is None or not n:
        return pd.DataFrame({"sector": np.full(n, None, dtype=object), "in_sp500": np.nan})
    left = pd.DataFrame(
        {"on": _ns(sb["event_timestamp"]), "symbol": sb["symbol"].astype(str).to_numpy()}
    )
    left["_row"] = np.arange(n)
    left = left.sort_values("on", kind="stable")
    got = pd.merge_asof(left, pit, on="on", by="symbol", direction="backward")
    got = got.sort_values("_row", kind="stable")
    member = got["in_sp500"].to_numpy(dtype="float64", na_value=np.nan)
    if membership_from is not None:
        after = got["on"].to_numpy() >= membership_from
        member = np.where(np.isnan(member) & after, 0.0, member)
    return pd.DataFrame({"sector": got["sector"].to_numpy(), "in_sp500": member})


def prepare_context(
    bars: pd.DataFrame,
    macro: pd.DataFrame | None = None,
    fx_rates: pd.DataFrame | None = None,
    listings: pd.DataFrame | None = None,
    index_symbol: str = INDEX_SYMBOL,
) -> MarketContext:
    """Market-wide inputs from the canonical tables (any of macro/fx_rates/listings may be None)."""
    sb = _sorted_bars(bars)
    rets = _returns(sb, (1, 5, 20))
    is_index = (sb["symbol"] == index_symbol).to_numpy()
    index_returns = pd.DataFrame(
        {
            "event_timestamp": sb["event_timestamp"][is_index].reset_index(drop=True),
            "spx_ret_1": rets[1][is_index],
            "spx_ret_5": rets[5][is_index],
            "spx_ret_20": rets[20][is_index],
        }
    )

    pit, membership_from = _listing_states(listings)
    sector = _asof_listing(sb, pit, membership_from)["sector"]
    per_row = pd.DataFrame(
        {
            "sector": sector,
            "event_timestamp": sb["event_timestamp"],
            "r1": rets[1],
            "r20": rets[20],
        }
    ).dropna(subset=["sector"])
    grouped = per_row.groupby(["sector", "event_timestamp"], sort=True)
    sector_means = grouped.agg(
        sector_ret_1=("r1", "mean"),
        n1=("r1", "count"),
        sector_ret_20=("r20", "mean"),
        n20=("r20", "count"),
    ).reset_index()
    sector_means["sector_ret_1"] = sector_means["sector_ret_1"].where(
        sector_means["n1"] >= MIN_SECTOR_MEMBERS
    )
    sector_means["sector_ret_20"] = sector_means["sector_ret_20"].where(
        sector_means["n20"] >= MIN_SECTOR_MEMBERS
    )
    sector_means = sector_means.drop(columns=["n1", "n20"])

    series: dict[str, pd.DataFrame] = {}
    if macro is not None and len(macro):
        for name, derived in _MACRO_DERIVED.items():
            rows = macro[macro["series"] == name]
            if len(rows):
                series[name] = _series_frame(rows["event_timestamp"], rows["value"], derived)
    if fx_rates is not None and len(fx_rates):
        wanted = {c for pair in _FX_DERIVED for c in pair} | {"EUR"}
        fx = fx_rates[fx_rates["base"].isin(wanted) & fx_rates["quote"].isin(wanted)]
        pairs = {key: rows for key, rows in fx.groupby(["base", "quote"], sort=False)}
        for (base, quote), derived in _FX_DERIVED.items():
            pair = _fx_pair(pairs, base, quote)
            if pair is not None and len(pair):
                series[f"{base}{quote}"] = _series_frame(
                    pair["event_timestamp"], pair["rate"], derived
                )
    return MarketContext(index_returns, pit, membership_from, sector_means, series)


def _rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of each full trailing window, computed per window (independent of earlier rows)."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = np.lib.stride_tricks.sliding_window_view(values, window).sum(axis=1)
    return out


def _beta_corr(codes: np.ndarray, x: np.ndarray, y: np.ndarray, window: int):
    """Rolling sample beta of x on y and correlation, within symbol, full windows only."""
    n = float(window)
    sx, sy = _rolling_sum(x, window), _rolling_sum(y, window)
    sxy, sxx, syy = (
        _rolling_sum(x * y, window),
        _rolling_sum(x * x, window),
        _rolling_sum(y * y, window),
    )
    cov = (sxy - sx * sy / n) / (n - 1)
    var_x = (sxx - sx * sx / n) / (n - 1)
    var_y = (syy - sy * sy / n) / (n - 1)
    inside = np.zeros(len(x), dtype=bool)
    if len(x) >= window:
        inside[window - 1 :] = codes[window - 1 :] == codes[: len(x) - window + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(inside & (var_y > 0), cov / var_y, np.nan)
        corr = np.where(inside & (var_x > 0) & (var_y > 0), cov / np.sqrt(var_x * var_y), np.nan)
    return beta, corr


def _ns(times: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch (int64) of a timestamp column, without Python objects."""
    return pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8


def _asof(
    times_ns: np.ndarray, frame: pd.DataFrame, tolerance: pd.Timedelta
) -> dict[str, np.ndarray]:
    """Backward as-of join: per left time, the last `frame` row at or before it, at most
    `tolerance` old (else null). `frame` is sorted by unique event_timestamp."""
    right = _ns(frame["event_timestamp"])
    pos = np.searchsorted(right, times_ns, side="right") - 1  # exact matches allowed
    found = pos >= 0
    safe = np.where(found, pos, 0)
    ok = found & (times_ns - right[safe] <= tolerance.value)
    return {
        col: np.where(ok, frame[col].to_numpy("float64")[safe], np.nan)
        for col in frame.columns
        if col != "event_timestamp"
    }


def context_features(bars: pd.DataFrame, ctx: MarketContext) -> pd.DataFrame:
    """The context family for `bars` (any subset of symbols, each with its full history).

    One row per input bar, sorted by symbol then event_timestamp: `symbol`, `event_timestamp`
    and every name in `FEATURE_NAMES`.
    """
    sb = _sorted_bars(bars)
    codes = pd.factorize(sb["symbol"])[0]
    rets = _returns(sb, (1, 5, 20))
    out = sb[["symbol", "event_timestamp"]].copy()
    idx = sb[["event_timestamp"]].merge(ctx.index_returns, on="event_timestamp", how="left")
    for n in (1, 5, 20):
        out[f"ret_rel_spx_{n}"] = rets[n] - idx[f"spx_ret_{n}"].to_numpy("float64")
    beta, corr = _beta_corr(codes, rets[1], idx["spx_ret_1"].to_numpy("float64"), BETA_WINDOW)
    out["beta_spx_60"] = beta
    out["corr_spx_60"] = corr

    known = _asof_listing(sb, ctx.listings, ctx.membership_from)
    out["in_sp500"] = known["in_sp500"]
    sec = pd.DataFrame({"sector": known["sector"], "event_timestamp": sb["event_timestamp"]})
    sec = sec.merge(ctx.sector_means, on=["sector", "event_timestamp"], how="left")
    out["ret_rel_sector_1"] = rets[1] - sec["sector_ret_1"].to_numpy("float64")
    out["ret_rel_sector_20"] = rets[20] - sec["sector_ret_20"].to_numpy("float64")

    times_ns = _ns(sb["event_timestamp"])
    for frame in ctx.series.values():
        for col, values in _asof(times_ns, frame, MACRO_TOLERANCE).items():
            out[col] = values
    for name in FEATURE_NAMES:  # absent inputs -> null columns, never 0
        if name not in out.columns:
            out[name] = np.nan
    return out[["symbol", "event_timestamp", *FEATURE_NAMES]]


def compute_context_features(
    bars: pd.DataFrame,
    macro: pd.DataFrame | None = None,
    fx_rates: pd.DataFrame | None = None,
    listings: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Context features of every bar, from the canonical tables (the sibling of compute_features)."""
    return context_features(bars, prepare_context(bars, macro, fx_rates, listings))
