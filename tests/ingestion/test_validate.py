"""The validator on small hand-made batches: rule order, duplicates, time order per entity."""

from __future__ import annotations

import pandas as pd
import pytest

from ingestion.batch import Batch
from ingestion.rules import bar_rules
from ingestion.validate import check_batch

NOW = pd.Timestamp("2024-01-01", tz="UTC")


def bars(rows: list[tuple]) -> Batch:
    frame = pd.DataFrame(rows, columns=["symbol", "day", "open", "high", "low", "close", "volume"])
    frame["event_timestamp"] = pd.to_datetime(frame["day"]).dt.tz_localize("UTC")
    frame["trade_date"] = pd.to_datetime(frame["day"])
    frame["asset_class"] = "equity"
    frame["price_basis"] = "as_traded"
    raw = frame[["symbol", "day", "open", "high", "low", "close", "volume"]].copy()
    return Batch("bars", frame.drop(columns="day"), raw, bar_rules())


def rules_of(checked) -> dict[tuple[str, str], str]:
    return dict(
        zip(
            zip(checked.rejected["symbol"], checked.rejected["day"], strict=True),
            checked.rejected["_rule"],
            strict=True,
        )
    )


@pytest.mark.parametrize("interleaved", [False, True])
def test_time_order_and_duplicates_per_symbol(interleaved: bool) -> None:
    a = [
        ("A", "2024-01-02", 1, 2, 1, 2, 0),
        ("A", "2024-01-03", 1, 2, 1, 2, 5),
        ("A", "2024-01-01", 1, 2, 1, 2, 5),
        ("A", "2024-01-03", 1, 2, 1, 2, 5),
    ]
    b = [("B", "2024-01-01", 1, 2, 1, 2, 5), ("B", "2024-01-05", 1, 2, 1, 2, 5)]  # fmt: skip
    rows = (
        [r for pair in zip(a, b + [None, None], strict=True) for r in pair if r]
        if interleaved
        else a + b
    )
    checked = check_batch("t", bars(rows), NOW)
    assert rules_of(checked) == {
        ("A", "2024-01-01"): "time_not_increasing",
        ("A", "2024-01-03"): "duplicate_key",
    }
    assert checked.rows_loaded == 4 and len(checked.accepted) == 4
    assert (checked.accepted["volume"] == 0).sum() == 1  # zero volume is legitimate


def test_first_failing_rule_wins_and_values_are_kept() -> None:
    rows = [
        ("A", "2024-01-01", None, 2, 1, 2, 5),  # missing open
        ("A", "2024-01-02", -1, 2, 1, 2, 5),  # not positive (also high ok)
        ("A", "2024-01-03", 3, 2, 1, 2, 5),  # high below open
        ("A", "2024-01-04", 1, 3, 2.5, 2, 5),  # low above close
        ("A", "2024-01-05", 1, 2, 1, 2, -5),  # negative volume
        ("A", "2024-01-06", 1, 2, 1, 2, 5),  # fine
    ]
    checked = check_batch("t", bars(rows), NOW)
    assert list(checked.rejected["_rule"]) == [
        "required_fields", "price_not_positive", "high_below_open_close",
        "low_above_open_close", "negative_volume",
    ]  # fmt: skip
    assert checked.accepted["event_timestamp"].tolist() == [pd.Timestamp("2024-01-06", tz="UTC")]
    assert (
        set(checked.accepted["source"]) == {"t"} and (checked.accepted["ingested_at"] == NOW).all()
    )
