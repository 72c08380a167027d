"""Splits that respect groups: students of one school never on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    BaseCrossValidator,
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from shared.errors import InvalidInput


def splitter(task: str, folds: int, seed: int, grouped: bool) -> BaseCrossValidator:
    """Folds that are stratified for classification and never split a group."""
    if grouped and task == "classification":
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    if grouped:
        return GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    if task == "classification":
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def grouped_split(
    groups: pd.Series, test_fraction: float, seed: int, column: str
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions with every group wholly on one side."""
    labels = groups.astype(str).where(groups.notna(), "(missing)").to_numpy()
    count = len(np.unique(labels))
    if count < 2:
        raise InvalidInput(
            f"group_split_column {column!r} has {count} group; a group-aware split "
            "needs at least 2"
        )
    split = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    train, test = next(split.split(np.zeros(len(labels)), groups=labels))
    return np.sort(train), np.sort(test)


def fold_count_for_groups(groups: pd.Series, folds: int) -> int:
    """Fewer folds when there are fewer groups than folds (at least 2)."""
    return max(2, min(folds, int(groups.nunique(dropna=False))))
