"""How much a held-out score can be trusted: bootstrap intervals, calibration,
and precision and recall when only the top share of students can be helped.

Bootstrap resamples are drawn from the recorded seed, so the same version on
the same rows always gets the same interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

ScoreFn = Callable[[np.ndarray], float | None]
CONFIDENCE = 0.95
CALIBRATION_BINS = 10


def bootstrap_interval(
    score: ScoreFn, n_rows: int, resamples: int, seed: int
) -> dict[str, float | None]:
    """A percentile interval of ``score`` over resampled row positions."""
    values = _resampled(score, n_rows, resamples, seed)
    if len(values) < resamples // 2:
        return {
            "low": None,
            "high": None,
            "level": CONFIDENCE,
            "resamples": len(values),
        }
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return {
        "low": _round(low),
        "high": _round(high),
        "level": CONFIDENCE,
        "resamples": len(values),
    }


def paired_difference(
    candidate: ScoreFn, champion: ScoreFn, n_rows: int, resamples: int, seed: int
) -> dict[str, float | None]:
    """Interval of candidate minus champion, both scored on the same resampled rows."""

    def difference(rows: np.ndarray) -> float | None:
        first, second = candidate(rows), champion(rows)
        return None if first is None or second is None else first - second

    return bootstrap_interval(difference, n_rows, resamples, seed)


def _resampled(score: ScoreFn, n_rows: int, resamples: int, seed: int) -> list[float]:
    generator = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = score(generator.integers(0, n_rows, n_rows))
        if value is not None and np.isfinite(value):
            values.append(float(value))
    return values


def calibration(y_positive: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Brier score and reliability-curve points (predicted vs observed per bin)."""
    if len(np.unique(y_positive)) < 2:
        return {"brier": _round(brier_score_loss(y_positive, proba)), "curve": []}
    observed, predicted = calibration_curve(
        y_positive, proba, n_bins=CALIBRATION_BINS, strategy="quantile"
    )
    return {
        "brier": _round(brier_score_loss(y_positive, proba)),
        "curve": [
            {"predicted": _round(p), "observed": _round(o)}
            for p, o in zip(predicted, observed, strict=True)
        ],
    }


def at_capacity(
    y_positive: np.ndarray, proba: np.ndarray, share: float
) -> dict[str, Any]:
    """Precision and recall when the ``share`` of students most at risk are flagged."""
    flagged = max(1, int(round(share * len(proba))))
    order = np.argsort(-proba, kind="stable")[:flagged]
    hits = int(y_positive[order].sum())
    positives = int(y_positive.sum())
    return {
        "share": share,
        "flagged": flagged,
        "precision": _round(hits / flagged),
        "recall": _round(hits / positives) if positives else None,
    }


def _round(value: Any) -> float | None:
    number = float(value)
    return round(number, 6) if np.isfinite(number) else None
