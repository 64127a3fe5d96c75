"""Entities: who a feature row is about."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Instrument identifier: equity/ETF ticker (AAPL), index (^GSPC, ^IXIC).",
)
