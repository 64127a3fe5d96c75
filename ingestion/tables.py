"""Canonical offline tables: names, keys, column types and the explicit (pandera) schemas.

Why one place: every source maps its rows onto one of these tables, the validator checks rows
against them, and the offline layer keys its upserts on `TableSpec.key`. docs/architecture.md
holds the same table; change both together.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

# logical column types -> pandas dtypes of a conforming frame
_DTYPES = {
    "str": "object",
    "float64": "float64",
    "int64": "int64",
    "bool": "bool",
    "ts": "datetime64[ns, UTC]",
}
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: its key (unique per row) and its columns in order."""

    name: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (column, logical type)
    nullable: tuple[str, ...] = ()
    time_column: str | None = "event_timestamp"
    entity: tuple[str, ...] = ()  # columns identifying one series (for monotonic-time checks)

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[t]) for c, t in self.columns})

    def conform(self, df: pd.DataFrame, extra: dict[str, Any] | None = None) -> pd.DataFrame:
        """Columns in canonical order with canonical dtypes (raises on a missing column).

        `extra` sets columns to one value each (e.g. `ingested_at`) without copying `df` first.
        """
        out = {}
        for col, typ in self.columns:
            if extra is not None and col in extra:
                s = pd.Series(extra[col], index=df.index)
            else:
                s = df[col]
            if typ == "ts":
                if not isinstance(s.dtype, pd.DatetimeTZDtype):
                    s = pd.to_datetime(s, utc=True)
                if s.dtype != _UTC_NS:  # already UTC ns (the common case): no copy
                    s = s.dt.tz_convert("UTC").astype(_UTC_NS)
            elif typ == "str":
                if s.dtype != object:
                    s = s.astype(object)
            elif typ == "bool":
                if s.dtype != bool:
                    s = s.astype(bool)
            elif s.dtype != _DTYPES[typ]:
                s = s.astype(_DTYPES[typ])
            out[col] = s
        return pd.DataFrame(out, index=df.index)


_META = (("source", "str"), ("ingested_at", "ts"))

BARS = TableSpec(
    "bars",
    key=("symbol", "event_timestamp"),
    columns=(
        ("symbol", "str"),
        ("event_timestamp", "ts"),
        ("open", "float64"),
        ("high", "float64"),
        ("low", "float64"),
        ("close", "float64"),
        ("volume", "float64"),
        ("asset_class", "str"),
        ("price_basis", "str"),  # as_traded | split_adjusted_as_of:YYYY-MM-DD
        *_META,
    ),
    entity=("symbol",),
)
CORPORATE_ACTIONS = TableSpec(
    "corporate_actions",
    key=("symbol", "ex_date"),
    columns=(
        ("symbol", "str"),
        ("ex_date", "ts"),  # UTC midnight of the ex-date
        ("event_timestamp", "ts"),  # knowledge time: the ex-date's XNYS session open
        ("split_ratio", "float64"),  # new shares per old: 7.0 for 7:1, 0.05 for 1:20
        ("cash_dividend", "float64"),  # USD per share, as-traded basis of the ex-date
        ("split_price_factor", "float64"),  # 1 / split_ratio
        ("dividend_price_factor", "float64"),  # 1 - dividend / previous close
        *_META,
    ),
    entity=("symbol",),
)
VENDOR_DISAGREEMENTS = TableSpec(
    "vendor_disagreements",
    key=("symbol", "event_timestamp", "loser_source"),
    columns=(
        ("symbol", "str"),
        ("event_timestamp", "ts"),
        ("field", "str"),
        ("winner_source", "str"),
        ("winner_basis", "str"),
        ("winner_value", "float64"),
        ("loser_source", "str"),
        ("loser_basis", "str"),
        ("loser_value", "float64"),  # as the loser delivered it (its own basis)
        ("loser_value_as_winner_basis", "float64"),  # converted with the corporate actions
        ("rel_diff", "float64"),  # |converted / winner - 1|
        ("tolerance", "float64"),
        ("ingested_at", "ts"),
    ),
    time_column=None,
)
MACRO = TableSpec(
    "macro",
    key=("series", "event_timestamp"),
    columns=(("series", "str"), ("event_timestamp", "ts"), ("value", "float64"), *_META),
    entity=("series",),
)
FX_RATES = TableSpec(
    "fx_rates",
    key=("base", "quote", "event_timestamp", "source"),
    columns=(
        ("base", "str"),
        ("quote", "str"),
        ("rate", "float64"),
        ("event_timestamp", "ts"),
        *_META,
    ),
    entity=("base", "quote", "source"),
)
LISTINGS = TableSpec(
    "listings",
    key=("symbol", "event_timestamp"),  # point-in-time change rows (ingestion/listings.py)
    columns=(
        ("symbol", "str"),
        ("name", "str"),
        ("sector", "str"),
        ("sub_industry", "str"),
        ("exchange", "str"),
        ("is_etf", "bool"),
        ("date_added", "str"),  # ISO date YYYY-MM-DD (S&P 500 members)
        ("in_sp500", "bool"),  # listed in the latest S&P 500 snapshot known at event_timestamp
        ("event_timestamp", "ts"),
        *_META,
    ),
    nullable=("sector", "sub_industry", "exchange", "date_added"),
    entity=("symbol",),
)
ACCOUNTS = TableSpec(
    "accounts",
    key=("account_id",),
    columns=(
        ("account_id", "str"),
        ("opened_at", "ts"),
        ("risk_profile", "str"),
        ("base_currency", "str"),
        ("simulated", "bool"),
        ("event_timestamp", "ts"),
        *_META,
    ),
)
TRANSACTIONS = TableSpec(
    "transactions",
    key=("txn_id",),
    columns=(
        ("txn_id", "str"),
        ("account_id", "str"),
        ("symbol", "str"),
        ("quantity", "float64"),
        ("price", "float64"),
        ("event_timestamp", "ts"),
        ("simulated", "bool"),
        *_META,
    ),
)
POSITIONS = TableSpec(
    "positions",
    key=("account_id", "symbol"),
    columns=(
        ("account_id", "str"),
        ("symbol", "str"),
        ("quantity", "float64"),
        ("avg_cost", "float64"),
        ("event_timestamp", "ts"),
        ("simulated", "bool"),
        *_META,
    ),
)
QUARANTINE = TableSpec(
    "quarantine",
    key=("source", "rule", "row_hash"),
    columns=(
        ("source", "str"),
        ("table", "str"),
        ("rule", "str"),
        ("detail", "str"),
        ("row", "str"),
        ("row_hash", "str"),
        ("ingested_at", "ts"),
    ),
    time_column=None,
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        CORPORATE_ACTIONS,  # before bars: the bars priority converts bases with the actions
        BARS,
        MACRO,
        FX_RATES,
        LISTINGS,
        ACCOUNTS,
        TRANSACTIONS,
        POSITIONS,
        VENDOR_DISAGREEMENTS,
        QUARANTINE,
    )
}


@cache
def pandera_schema(table: str) -> Any:
    """The explicit pandera schema of a canonical table (columns, order, types, nullability).

    Imported lazily: pandera costs ~0.7 s to import and only the ingest run needs it.
    """
    import pandera.pandas as pa

    spec = TABLES[table]
    checks = {
        "float64": [
            pa.Check(lambda s: pd.Series(np.isfinite(s.to_numpy()), index=s.index), name="finite")
        ]
    }
    columns = {}
    for col, typ in spec.columns:
        nullable = col in spec.nullable
        dtype = _DTYPES[typ] if typ != "str" else object
        col_checks = [] if nullable else checks.get(typ, [])
        columns[col] = pa.Column(dtype, nullable=nullable, checks=col_checks)
    # key uniqueness is enforced by the validator's duplicate_key rule (cheaper than here)
    return pa.DataFrameSchema(columns, strict=True, ordered=True)
