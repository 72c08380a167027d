"""Per-group evidence: how a version treats each group of students.

For every value of each group column, and every pair of values of two
columns (key ``a+b``, values ``x+y``), the held-out students of that group
are scored on their own. A group smaller than the minimum size is reported
with its size and ``too_small``, never hidden and never scored (its
figures would be noise). The gap of a metric is the difference between its
best and its worst group among the groups large enough to score.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from shared.jobs import CLASSIFICATION_GAP_METRICS, REGRESSION_GAP_METRICS

GroupTable = dict[str, dict[str, dict[str, Any]]]


__all__ = [
    "CLASSIFICATION_GAP_METRICS",
    "REGRESSION_GAP_METRICS",
    "gaps",
    "group_table",
]
MISSING_VALUE = "(missing)"


def group_table(
    groups: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    positive_proba: np.ndarray | None,
    task: str,
    positive: Any,
    min_size: int,
) -> GroupTable:
    """Metrics per group value and per pair of group columns."""
    labels = {name: _labels(groups[name]) for name in groups.columns}
    table: GroupTable = {}
    for name, values in labels.items():
        table[name] = _score_groups(
            values, y_true, y_pred, positive_proba, task, positive, min_size
        )
    for first, second in combinations(groups.columns, 2):
        pairs = labels[first] + "+" + labels[second]
        table[f"{first}+{second}"] = _score_groups(
            pairs, y_true, y_pred, positive_proba, task, positive, min_size
        )
    return table


def gaps(
    table: GroupTable, metrics: tuple[str, ...]
) -> dict[str, dict[str, float | None]]:
    """Per group column (and pair), the best-minus-worst gap of each metric."""
    result: dict[str, dict[str, float | None]] = {}
    for column, values in table.items():
        result[column] = {}
        for metric in metrics:
            scores = [
                v[metric]
                for v in values.values()
                if not v.get("too_small") and v.get(metric) is not None
            ]
            result[column][metric] = (
                round(max(scores) - min(scores), 6) if len(scores) >= 2 else None
            )
    return result


def _labels(column: pd.Series) -> pd.Series:
    text = column.astype(object).where(column.notna(), MISSING_VALUE)
    return text.map(_text).astype(str).reset_index(drop=True)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _score_groups(
    labels: pd.Series,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    positive_proba: np.ndarray | None,
    task: str,
    positive: Any,
    min_size: int,
) -> dict[str, dict[str, Any]]:
    scored = {}
    for value in sorted(labels.unique()):
        mask = (labels == value).to_numpy()
        size = int(mask.sum())
        if size < min_size:
            scored[value] = {"n": size, "too_small": True}
            continue
        proba = None if positive_proba is None else positive_proba[mask]
        if task == "classification":
            scored[value] = _classification(y_true[mask], y_pred[mask], proba, positive)
        else:
            scored[value] = _regression(y_true[mask], y_pred[mask])
    return scored


def _classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, positive: Any
) -> dict[str, Any]:
    actual = y_true == positive
    flagged = y_pred == positive
    result: dict[str, Any] = {
        "n": int(len(y_true)),
        "positives": int(actual.sum()),
        "accuracy": _share(y_true == y_pred),
        "selection_rate": _share(flagged),
        "recall": _share(flagged[actual]),
        "false_negative_rate": _share(~flagged[actual]),
        "false_positive_rate": _share(flagged[~actual]),
        "precision": _share(actual[flagged]),
    }
    if proba is not None:
        result["mean_predicted"] = _plain(np.mean(proba))
        result["observed_rate"] = _share(actual)
    return result


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    error = y_pred.astype(float) - y_true.astype(float)
    return {
        "n": int(len(y_true)),
        "mae": _plain(np.mean(np.abs(error))),
        "mean_error": _plain(np.mean(error)),
        "mean_actual": _plain(np.mean(y_true.astype(float))),
    }


def _share(mask: np.ndarray) -> float | None:
    return None if len(mask) == 0 else _plain(np.mean(mask))


def _plain(value: Any) -> float | None:
    number = float(value)
    return round(number, 6) if np.isfinite(number) else None
