"""Value coercion for mapped columns: numbers and dates that fail to parse become null.

Why: a bad value must not fail a whole file or be guessed at; it becomes null, the row fails
`required_fields`, and the quarantine keeps the original text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_float(values: pd.Series) -> pd.Series:
    """float64; unparseable text and placeholders such as "." or "N/A" become NaN."""
    if pd.api.types.is_float_dtype(values.dtype):
        return values.astype("float64")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def to_str(values: pd.Series) -> pd.Series:
    """object strings with surrounding blanks removed; missing stays missing."""
    codes, uniques = pd.factorize(values)  # strip each distinct value once
    stripped = np.array([str(u).strip() for u in uniques] + [None], dtype=object)
    return pd.Series(stripped[codes], index=values.index, dtype=object)
