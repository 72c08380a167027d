"""Curves a report keeps for the dashboard: ROC points and residuals.

Only model outputs and numbers derived from the labels are kept, never a
student's id or feature values, and each curve is bounded whatever the
number of held-out rows: at most ``ROC_MAX_POINTS`` points of a ROC curve,
at most ``RESIDUALS_MAX_POINTS`` (predicted, residual) pairs, a seeded
sample of the rows when there are more. A residual is the actual value
minus the predicted one: below zero, the model over-estimated the student.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

ROC_MAX_POINTS = 100
RESIDUALS_MAX_POINTS = 300
RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
POINT_DECIMALS = 4  # enough to draw; the figures a person reads keep SUMMARY
SUMMARY_DECIMALS = 6


def roc(actual: np.ndarray, scores: np.ndarray) -> dict[str, Any] | None:
    """False- against true-positive rate at each threshold, thinned, with the AUC.

    ``actual`` is 1 for the positive class, 0 otherwise; ``scores`` are the
    positive class's probabilities. None when the rows hold a single class.
    """
    kept = np.isfinite(scores)
    actual, scores = actual[kept], scores[kept]
    if len(np.unique(actual)) < 2:
        return None
    fpr, tpr, _ = roc_curve(actual, scores, drop_intermediate=True)
    shown = thinned(len(fpr), ROC_MAX_POINTS)
    return {
        "auc": _round(auc(fpr, tpr), SUMMARY_DECIMALS),
        "points": [
            {
                "fpr": _round(fpr[i], POINT_DECIMALS),
                "tpr": _round(tpr[i], POINT_DECIMALS),
            }
            for i in shown
        ],
        "thinned_from": len(fpr),
    }


def thinned(n_points: int, most: int) -> np.ndarray:
    """Positions of at most ``most`` of ``n_points``, evenly spread, ends kept."""
    if n_points <= most:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, most).round().astype(int))


def residuals(actual: np.ndarray, predicted: np.ndarray, seed: int) -> dict[str, Any]:
    """Summary of actual minus predicted on every row, and a sample of the pairs."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    kept = np.isfinite(actual) & np.isfinite(predicted)
    actual, predicted = actual[kept], predicted[kept]
    residual = actual - predicted

    rows = sampled_rows(len(residual), RESIDUALS_MAX_POINTS, seed)
    return {
        "definition": "actual - predicted",
        "rows": int(len(residual)),
        **_summary(residual),
        "sample": [
            {
                "predicted": _round(predicted[i], POINT_DECIMALS),
                "residual": _round(residual[i], POINT_DECIMALS),
            }
            for i in rows
        ],
        "sampled": len(rows) < len(residual),
        "seed": seed,
    }


def _summary(residual: np.ndarray) -> dict[str, Any]:
    if len(residual) == 0:
        return {"mean": None, "std": None, "quantiles": {}}
    quantiles = np.quantile(residual, RESIDUAL_QUANTILES)
    return {
        "mean": _round(np.mean(residual), SUMMARY_DECIMALS),
        "std": _round(np.std(residual), SUMMARY_DECIMALS),
        "quantiles": {
            f"p{round(q * 100):02d}": _round(value, SUMMARY_DECIMALS)
            for q, value in zip(RESIDUAL_QUANTILES, quantiles, strict=True)
        },
    }


def sampled_rows(n_rows: int, most: int, seed: int) -> np.ndarray:
    """Positions of at most ``most`` of ``n_rows`` rows, a seeded sample, in order."""
    rows = np.arange(n_rows)
    if n_rows <= most:
        return rows
    generator = np.random.default_rng(seed)
    return np.sort(generator.choice(rows, most, replace=False))


def _round(value: Any, decimals: int) -> float | None:
    number = float(value)
    return round(number, decimals) if np.isfinite(number) else None
