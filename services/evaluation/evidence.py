"""The evidence a report holds about one version on its held-out students.

Metrics with a bootstrap interval for the primary one, calibration and the
share of at-risk students found at a capacity (classifiers), per-group
tables, and permutation importance of each feature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score

from services.evaluation import fairness, uncertainty
from services.evaluation.metrics import classification_metrics, regression_metrics
from shared.jobs import JobRequest
from shared.registry import VersionRecord
from shared.targets import CLASSIFICATION

Metrics = dict[str, float | None]
ScoreFn = Callable[[np.ndarray], float | None]

IMPORTANCE_MAX_ROWS = 2_000
IMPORTANCE_REPEATS = 5


@dataclass
class Outputs:
    """What a version predicts for the held-out rows."""

    predicted: np.ndarray
    proba: np.ndarray | None
    positive_proba: np.ndarray | None


def outputs(pipeline: Any, version: VersionRecord, X: pd.DataFrame) -> Outputs:
    features = X[[feature.name for feature in version.features]]
    predicted = np.asarray(pipeline.predict(features))
    proba = None
    if version.task == CLASSIFICATION and version.has_proba:
        proba = np.asarray(pipeline.predict_proba(features), dtype=float)
    positive = proba[:, 1] if proba is not None and proba.shape[1] == 2 else None
    return Outputs(predicted, proba, positive)


def metrics_of(version: VersionRecord, y: np.ndarray, out: Outputs) -> Metrics:
    if version.task != CLASSIFICATION:
        return regression_metrics(y, out.predicted)
    return classification_metrics(y, out.predicted, out.proba, version.classes or [])


def score_fn(
    metric: str, version: VersionRecord, y: np.ndarray, out: Outputs
) -> ScoreFn:
    """The primary metric on a subset of row positions, None where undefined."""

    def score(rows: np.ndarray) -> float | None:
        truth = y[rows]
        try:
            if metric == "roc_auc" and out.positive_proba is not None:
                positive = version.classes[1] if version.classes else 1
                return float(roc_auc_score(truth == positive, out.positive_proba[rows]))
            if metric == "r2":
                return float(r2_score(truth.astype(float), out.predicted[rows]))
            return float(balanced_accuracy_score(truth, out.predicted[rows]))
        except ValueError:
            return None

    return score


def interval(score: ScoreFn, n_rows: int, resamples: int, seed: int) -> dict[str, Any]:
    return uncertainty.bootstrap_interval(score, n_rows, resamples, seed)


def classifier_extras(
    version: VersionRecord, y: np.ndarray, out: Outputs, capacity: float
) -> dict[str, Any]:
    """Calibration and precision/recall at a capacity, for binary probabilities."""
    if out.positive_proba is None or not version.classes:
        return {"calibration": None, "capacity": None}
    actual = (y == version.classes[1]).astype(int)
    return {
        "calibration": uncertainty.calibration(actual, out.positive_proba),
        "capacity": uncertainty.at_capacity(actual, out.positive_proba, capacity),
    }


def groups_of(
    request: JobRequest,
    version: VersionRecord,
    X: pd.DataFrame,
    y: np.ndarray,
    out: Outputs,
) -> dict[str, Any]:
    if not request.group_columns:
        return {"table": {}, "gaps": {}}
    positive = (
        version.classes[1] if version.classes and len(version.classes) == 2 else None
    )
    table = fairness.group_table(
        X[request.group_columns].reset_index(drop=True),
        y,
        out.predicted,
        out.positive_proba,
        version.task,
        positive,
        request.min_group_size,
    )
    metrics = (
        fairness.CLASSIFICATION_GAP_METRICS
        if version.task == CLASSIFICATION
        else fairness.REGRESSION_GAP_METRICS
    )
    return {"table": table, "gaps": fairness.gaps(table, metrics)}


def importance(
    pipeline: Any, version: VersionRecord, X: pd.DataFrame, y: np.ndarray, metric: str
) -> list[dict[str, Any]]:
    """Permutation importance on (a seeded sample of) the held-out rows."""
    names = [feature.name for feature in version.features]
    generator = np.random.default_rng(version.seed)
    rows = np.arange(len(X))
    if len(rows) > IMPORTANCE_MAX_ROWS:
        rows = np.sort(generator.choice(rows, IMPORTANCE_MAX_ROWS, replace=False))
    scoring = metric if metric in ("roc_auc", "r2") else "balanced_accuracy"
    try:
        result = permutation_importance(
            pipeline,
            X[names].iloc[rows],
            y[rows],
            scoring=scoring,
            n_repeats=IMPORTANCE_REPEATS,
            random_state=version.seed,
        )
    except ValueError:
        return []
    ranked = sorted(
        zip(names, result.importances_mean, result.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return [
        {
            "feature": name,
            "importance": round(float(mean), 6),
            "std": round(float(std), 6),
        }
        for name, mean, std in ranked
    ]
