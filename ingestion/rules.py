"""Row rules: named, vectorised checks that flag rows failing them.

Why named rules: a rejected row goes to quarantine under the first rule it fails, and the quality
report counts rows per rule, so a user sees *why* rows were not loaded. Each rule takes the
frame of mapped rows and returns a boolean Series, True where the row fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

Rule = Callable[[pd.DataFrame], pd.Series]
NamedRule = tuple[str, Rule]

# The rules run after the row rules of a batch, on rows that passed them.
DUPLICATE_KEY = "duplicate_key"
TIME_NOT_INCREASING = "time_not_increasing"
SUPERSEDED = "superseded"
MALFORMED_ROW = "malformed_row"
NOT_A_SESSION = "not_a_session"  # a daily row dated on a day the exchange did not trade
SOURCE_SWITCH = "source_switch_unexplained"  # a series changes vendor/basis with a jump


def required(columns: Sequence[str]) -> NamedRule:
    """Every listed field is present (not null/NaN/NaT, not an empty string)."""
    cols = list(columns)

    def check(df: pd.DataFrame) -> pd.Series:
        missing = np.zeros(len(df), dtype=bool)
        for c in cols:
            s = df[c]
            if s.dtype == object:
                # one factorize answers both questions: code -1 is missing (None/NaN/NaT/NA,
                # exactly what isna flags) and blank strings are checked once per distinct value
                codes, uniques = pd.factorize(s)
                blank = np.array([str(u).strip() == "" for u in uniques] + [True])
                missing |= blank[codes]
            else:
                missing |= s.isna().to_numpy()
        return pd.Series(missing, index=df.index)

    return ("required_fields", check)


def positive(columns: Sequence[str], name: str = "price_not_positive") -> NamedRule:
    cols = list(columns)
    return (name, lambda df: ~(df[cols] > 0).all(axis=1))


def finite(columns: Sequence[str], name: str = "value_not_finite") -> NamedRule:
    cols = list(columns)
    return (name, lambda df: ~np.isfinite(df[cols].to_numpy(dtype="float64")).all(axis=1))


def ohlc(
    open_: str = "open", high: str = "high", low: str = "low", close: str = "close"
) -> list[NamedRule]:
    """High is the top and low the bottom of the bar: high >= max(open, close), low <= min."""
    return [
        ("high_below_open_close", lambda df: df[high] < np.maximum(df[open_], df[close])),
        ("low_above_open_close", lambda df: df[low] > np.minimum(df[open_], df[close])),
    ]


def non_negative(column: str, name: str) -> NamedRule:
    return (name, lambda df: df[column] < 0)


def bar_rules() -> list[NamedRule]:
    """The rules of the `bars` table: fields present, the date an XNYS session, prices > 0, OHLC
    consistent, volume >= 0. Expects a `trade_date` column (the parsed date) next to the
    session-close `event_timestamp` (NaT for a date that is no session)."""
    prices = ["open", "high", "low", "close"]
    return [
        required(["symbol", "trade_date", *prices, "volume"]),
        session_date(),
        positive(prices),
        *ohlc(),
        non_negative("volume", "negative_volume"),
    ]


def session_date(column: str = "event_timestamp") -> NamedRule:
    """The row's date parsed but has no session stamp: it is no session of the exchange."""
    return (NOT_A_SESSION, lambda df: df[column].isna().to_numpy())


def in_set(column: str, allowed: set[str], name: str) -> NamedRule:
    return (name, lambda df: ~df[column].isin(allowed))


def equals(column: str, value: object, name: str) -> NamedRule:
    return (name, lambda df: df[column] == value)
