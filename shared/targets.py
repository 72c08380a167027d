"""How a target column becomes the labels or values a model learns."""

from __future__ import annotations

import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


def target_values(column: pd.Series, task: str) -> pd.Series:
    """Whole-number class labels of labelled rows become ints: 0/1 stays 0/1."""
    if task != CLASSIFICATION or not pd.api.types.is_numeric_dtype(column):
        return column
    if (column == column.round()).all():
        return column.astype("int64")
    return column
