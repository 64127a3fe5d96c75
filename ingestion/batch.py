"""A batch of rows one source read for one canonical table, with the rules that judge them.

Why a separate type: sources only parse and map; the validator, the cross-source priority and
the quarantine all work on this one shape, so rows read = rows loaded + rows quarantined can be
enforced in one place for every source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ingestion.rules import NamedRule


@dataclass
class Batch:
    """Rows of one source for one table.

    `frame` holds the rows mapped to the table's columns (its index aligned with `raw`, the rows
    as read, which quarantine records keep). `finalize` turns accepted rows into table rows when
    the mapping is not one-to-one (e.g. a wide VIX row becomes four `macro` rows).
    """

    table: str
    frame: pd.DataFrame
    raw: pd.DataFrame
    rules: list[NamedRule]
    key: tuple[str, ...] | None = None  # default: the table's key
    entity: tuple[str, ...] | None = None  # default: the table's entity columns
    finalize: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    check_time_order: bool = True
    allow_equal_times: bool = False  # e.g. several fills of one account at the same close
    malformed: list[str] = field(default_factory=list)  # lines that did not parse into a row


@dataclass
class Checked:
    """A batch after validation: accepted table rows and rejected raw rows with their rule."""

    source: str
    table: str
    rows_read: int
    accepted: pd.DataFrame  # table rows, index = raw row labels (repeated if finalize fans out)
    rejected: pd.DataFrame  # raw rows + columns `_rule`, `_detail`
    raw: pd.DataFrame = field(repr=False)

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - len(self.rejected)
