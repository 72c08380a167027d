"""Scores of a version on held-out rows, and which of two scores is better.

Metric keys are the names scikit-learn gives its scorers (``accuracy``,
``f1_macro``, ``roc_auc``, ...), except the regression errors, which are
plain ``mae`` and ``rmse`` (lower is better, as is ``log_loss``). The keys
depend only on the task and on whether the model is binary. Every value is
a Python float, or None where the metric is undefined for the rows at hand
(no rows, a single class in ``y_true``, no probabilities): never NaN, never
a numpy scalar, so a report goes to JSON as it is.

``proba`` is ``predict_proba`` output, one column per entry of ``classes``.
For a binary model without probabilities (C16) a 1-D array of decision
scores for ``classes[1]`` may be given instead: ROC AUC is computed from it
and log loss is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from shared.errors import InvalidInput

TASKS = ("classification", "regression")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})
HIGHER_IS_BETTER = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "r2",
    }
)

Metrics = dict[str, float | None]


# --- classification ---------------------------------------------------------


def classification_metrics(
    y_true: Any, y_pred: Any, proba: np.ndarray | None, classes: list[Any]
) -> Metrics:
    """Label, per-class-average and probability metrics for one set of rows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_proba(proba, len(y_true), classes)

    metrics = _label_metrics(y_true, y_pred)
    if len(classes) == 2:
        metrics |= _positive_class_metrics(y_true, y_pred, classes[1])
    metrics["roc_auc"] = _roc_auc(y_true, proba, classes)
    metrics["log_loss"] = _log_loss(y_true, proba, classes)
    return metrics


def _label_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> Metrics:
    # Averages over classes mean nothing when y_true holds a single class.
    averaged = _class_count(y_true) >= 2
    return {
        "accuracy": _score(accuracy_score, y_true, y_pred, when=len(y_true) > 0),
        "balanced_accuracy": _score(
            balanced_accuracy_score, y_true, y_pred, when=averaged
        ),
        "precision_macro": _averaged(precision_score, y_true, y_pred, when=averaged),
        "recall_macro": _averaged(recall_score, y_true, y_pred, when=averaged),
        "f1_macro": _averaged(f1_score, y_true, y_pred, when=averaged),
    }


def _positive_class_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, positive: Any
) -> Metrics:
    """Precision, recall and F1 of ``positive`` (a binary model's classes[1])."""
    both = _class_count(y_true) >= 2
    kwargs = {"pos_label": positive, "average": "binary", "zero_division": 0.0}
    return {
        "precision": _score(precision_score, y_true, y_pred, when=both, **kwargs),
        "recall": _score(recall_score, y_true, y_pred, when=both, **kwargs),
        "f1": _score(f1_score, y_true, y_pred, when=both, **kwargs),
    }


def _roc_auc(
    y_true: np.ndarray, proba: np.ndarray | None, classes: list[Any]
) -> float | None:
    """Binary: scores of classes[1]; multiclass: one-vs-rest, macro average."""
    if proba is None or not set(classes) <= set(y_true.tolist()):
        return None
    if len(classes) == 2:
        scores = proba if proba.ndim == 1 else proba[:, 1]
        return _score(roc_auc_score, y_true == classes[1], scores)
    return _score(roc_auc_score, y_true, proba, multi_class="ovr", labels=classes)


def _log_loss(
    y_true: np.ndarray, proba: np.ndarray | None, classes: list[Any]
) -> float | None:
    # Decision scores (1-D) are not probabilities: no log loss from them.
    if proba is None or proba.ndim == 1:
        return None
    return _score(log_loss, y_true, proba, when=len(y_true) > 0, labels=classes)


def _averaged(
    metric: Callable[..., Any], y_true: np.ndarray, y_pred: np.ndarray, when: bool
) -> float | None:
    # zero_division=0 scores a class that is never predicted as scikit-learn's
    # scorers do, so these values match cross-validation scores.
    return _score(metric, y_true, y_pred, when=when, average="macro", zero_division=0.0)


def _check_proba(proba: np.ndarray | None, n_rows: int, classes: list[Any]) -> None:
    if proba is None or proba.shape == (n_rows, len(classes)):
        return
    if len(classes) == 2 and proba.shape == (n_rows,):
        return
    raise InvalidInput(
        f"proba must have one row per sample and one column per class, shape "
        f"({n_rows}, {len(classes)}), or be 1-D decision scores of a binary "
        f"model (received shape {proba.shape!r})"
    )


def _class_count(y_true: np.ndarray) -> int:
    return len(pd.unique(y_true))


# --- regression -------------------------------------------------------------


def regression_metrics(y_true: Any, y_pred: Any) -> Metrics:
    """Mean absolute error, root mean squared error and R²."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    some = len(y_true) > 0

    # R² divides by the spread of y_true: undefined for one value or a constant.
    spread = len(y_true) >= 2 and bool(np.ptp(y_true) > 0)
    return {
        "mae": _score(mean_absolute_error, y_true, y_pred, when=some),
        "rmse": _score(root_mean_squared_error, y_true, y_pred, when=some),
        "r2": _score(r2_score, y_true, y_pred, when=spread),
    }


# --- baselines and comparison -------------------------------------------------


def primary_metric(task: str, n_classes: int, has_proba: bool) -> str:
    """The metric that decides promotion; imbalance-robust for classification."""
    _check_task(task)
    if task == "regression":
        return "r2"
    if n_classes == 2 and has_proba:
        return "roc_auc"
    return "balanced_accuracy"


def baseline_metrics(
    task: str, y_train: Any, y_test: Any, classes: list[Any]
) -> Metrics:
    """Scores on y_test of a model that learned only y_train's distribution.

    Classification: predicts the majority class, with the training class
    frequencies as probabilities. Regression: predicts the training mean.
    """
    _check_task(task)
    y_test = np.asarray(y_test)
    if task == "regression":
        mean = float(np.mean(np.asarray(y_train, dtype=float)))
        return regression_metrics(y_test, np.full(len(y_test), mean))

    priors = _class_priors(y_train, classes)
    majority = classes[int(np.argmax(priors))]
    y_pred = np.repeat(np.asarray([majority]), len(y_test))
    proba = np.tile(priors, (len(y_test), 1))
    return classification_metrics(y_test, y_pred, proba, classes)


def _class_priors(y_train: Any, classes: list[Any]) -> np.ndarray:
    counts = pd.Series(np.asarray(y_train)).value_counts()
    weights = counts.reindex(classes, fill_value=0).to_numpy(dtype=float)
    priors: np.ndarray = weights / max(weights.sum(), 1.0)
    return priors


def better(metric: str, candidate: float | None, champion: float | None) -> bool:
    """Whether candidate strictly beats champion; a missing score never wins."""
    _check_metric(metric)
    if candidate is None:
        return False
    if champion is None:
        return True
    if metric in LOWER_IS_BETTER:
        return candidate < champion
    return candidate > champion


def _check_metric(metric: str) -> None:
    if metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        known = ", ".join(
            repr(name) for name in sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)
        )
        raise InvalidInput(f"metric must be one of {known} (received {metric!r})")


def _check_task(task: str) -> None:
    if task not in TASKS:
        allowed = ", ".join(repr(name) for name in TASKS)
        raise InvalidInput(f"task must be one of {allowed} (received {task!r})")


# --- plain floats -----------------------------------------------------------


def _score(
    metric: Callable[..., Any],
    y_true: np.ndarray,
    y_other: np.ndarray,
    when: bool = True,
    **kwargs: Any,
) -> float | None:
    """metric(y_true, y_other) as a finite Python float, else None."""
    if not when:
        return None
    return _plain(metric(y_true, y_other, **kwargs))


def _plain(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
