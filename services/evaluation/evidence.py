"""The evidence a report holds about one version on its held-out students.

Metrics with a bootstrap interval for the primary one, calibration, the ROC
curve and the share of at-risk students found at a capacity (classifiers),
residuals (regressors), per-group tables, and permutation importance of
each feature, within a budget of rows, features and seconds
(``ImportanceBudget``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    balanced_accuracy_score,
    get_scorer,
    r2_score,
    roc_auc_score,
)

from services.evaluation import curves, fairness, uncertainty
from services.evaluation.metrics import classification_metrics, regression_metrics
from shared.jobs import JobRequest
from shared.registry import VersionRecord
from shared.targets import CLASSIFICATION

Metrics = dict[str, float | None]
ScoreFn = Callable[[np.ndarray], float | None]

IMPORTANCE_REPEATS = 5
RANKED_BY = "association with the model's output"


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


def roc_of(
    version: VersionRecord, y: np.ndarray, out: Outputs
) -> dict[str, Any] | None:
    """The version's ROC curve on the rows, for a binary model with probabilities."""
    if out.positive_proba is None or not version.classes:
        return None
    actual = (y == version.classes[1]).astype(int)
    curve = curves.roc(actual, out.positive_proba)
    return None if curve is None else {"version": version.version, **curve}


def roc_section(
    version: VersionRecord,
    y: np.ndarray,
    out: Outputs,
    champion: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The candidate's ROC curve and the champion's on the same rows, if known.

    The trivial baseline gives every student the same probability: its curve
    is the diagonal, and its AUC is in the report's baseline.
    """
    candidate = roc_of(version, y, out)
    if candidate is None:
        return None
    positives = int(np.sum(y == version.classes[1])) if version.classes else 0
    return {
        "candidate": candidate,
        "champion": champion,
        "rows": int(len(y)),
        "positives": positives,
        "max_points": curves.ROC_MAX_POINTS,
    }


def residuals_of(
    version: VersionRecord, y: np.ndarray, out: Outputs
) -> dict[str, Any] | None:
    """A regressor's residuals on the rows (seeded by the version), else None."""
    if version.task == CLASSIFICATION:
        return None
    return curves.residuals(y, out.predicted, version.seed)


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


@dataclass(frozen=True)
class ImportanceBudget:
    """How much permutation importance may cost (``IMPORTANCE_*`` settings)."""

    max_rows: int
    max_features: int
    seconds: float


Importance = list[dict[str, Any]]


def importance(
    pipeline: Any,
    version: VersionRecord,
    X: pd.DataFrame,
    y: np.ndarray,
    metric: str,
    budget: ImportanceBudget,
) -> tuple[Importance, dict[str, Any] | None]:
    """Permutation importance of each feature, and what it was computed on.

    Each measured feature costs one prediction of the rows per repeat, so:
    the held-out rows are sampled (seeded) down to ``budget.max_rows``; a
    feature constant on those rows gets 0 without being measured (shuffling
    it changes nothing); the others are measured most promising first, by
    their association with the model's output, at most
    ``budget.max_features`` of them, none started after ``budget.seconds``.
    Features left over are listed last with importance None. The second
    value, the scope, says which of these limits applied.
    """
    started = time.monotonic()
    names = [feature.name for feature in version.features]
    rows = curves.sampled_rows(len(X), budget.max_rows, version.seed)
    X_rows, y_rows = X[names].iloc[rows].reset_index(drop=True), y[rows]
    scoring = metric if metric in ("roc_auc", "r2") else "balanced_accuracy"
    scorer = get_scorer(scoring)
    constant = [name for name in names if X_rows[name].nunique(dropna=False) <= 1]
    candidates = [name for name in names if name not in set(constant)]
    try:
        ranked = _ranked(pipeline, version, X_rows, candidates)
        measured, stopped_by = _measure(
            pipeline, scorer, X_rows, y_rows, ranked, names, budget, version.seed
        )
    except ValueError:
        return [], None
    unmeasured = [name for name in ranked if name not in measured]
    scope = _scope(
        len(rows), len(X), names, measured, constant, stopped_by, budget, started
    )
    return _listing(measured, constant, unmeasured), scope


def _ranked(
    pipeline: Any, version: VersionRecord, X: pd.DataFrame, names: list[str]
) -> list[str]:
    """``names``, most associated with the model's output first (a cheap guess)."""
    output = _model_output(pipeline, version, X)
    strength = {name: _association(X[name], output) for name in names}
    return sorted(names, key=lambda name: -strength[name])


def _model_output(pipeline: Any, version: VersionRecord, X: pd.DataFrame) -> np.ndarray:
    """One column per class probability (one for two classes), or the prediction."""
    if version.task == CLASSIFICATION and version.has_proba:
        proba = np.asarray(pipeline.predict_proba(X), dtype=float)
        return proba[:, 1:] if proba.shape[1] == 2 else proba
    predicted = np.asarray(pipeline.predict(X))
    if version.task == CLASSIFICATION:
        return pd.get_dummies(pd.Series(predicted).astype(str)).to_numpy(dtype=float)
    return predicted.astype(float).reshape(-1, 1)


def _association(values: pd.Series, output: np.ndarray) -> float:
    """How strongly ``output`` varies with a feature: |correlation| or its ratio.

    A number counts by its value and by whether it is missing; a category by
    the share of the output's variance its groups explain (correlation ratio).
    """
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
        parts = [numbers.fillna(numbers.median()), numbers.isna().astype(float)]
        return max(_correlation(part.to_numpy(), output) for part in parts)
    groups = values.astype(str).to_numpy()
    return max(_correlation_ratio(groups, column) for column in output.T)


def _correlation(x: np.ndarray, output: np.ndarray) -> float:
    x = x - x.mean()
    centred = output - output.mean(axis=0)
    scale = np.sqrt((x**2).sum() * (centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(x @ centred) / scale
    return float(np.nan_to_num(r, nan=0.0).max(initial=0.0))


def _correlation_ratio(groups: np.ndarray, output: np.ndarray) -> float:
    total = ((output - output.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    frame = pd.DataFrame({"group": groups, "output": output})
    means = frame.groupby("group")["output"].agg(["mean", "size"])
    between = (means["size"] * (means["mean"] - output.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def _measure(
    pipeline: Any,
    scorer: Callable[..., float],
    X: pd.DataFrame,
    y: np.ndarray,
    ranked: list[str],
    names: list[str],
    budget: ImportanceBudget,
    seed: int,
) -> tuple[dict[str, tuple[float, float]], str | None]:
    """Mean and std of the score's drop per feature, in rank order, within budget.

    Each feature's shuffles come from the seed and its position among the
    version's features, so its figure does not depend on which others were
    measured.
    """
    started = time.monotonic()
    baseline = scorer(pipeline, X, y)
    measured: dict[str, tuple[float, float]] = {}
    for name in ranked:
        if len(measured) >= budget.max_features:
            return measured, "IMPORTANCE_MAX_FEATURES"
        if time.monotonic() - started > budget.seconds:
            return measured, "IMPORTANCE_BUDGET_S"
        generator = np.random.default_rng([seed, names.index(name)])
        column = X[name].to_numpy()
        drops = [
            baseline
            - scorer(
                pipeline, X.assign(**{name: column[generator.permutation(len(X))]}), y
            )
            for _ in range(IMPORTANCE_REPEATS)
        ]
        measured[name] = (float(np.mean(drops)), float(np.std(drops)))
    return measured, None


def _listing(
    measured: dict[str, tuple[float, float]],
    constant: list[str],
    unmeasured: list[str],
) -> Importance:
    """Measured features by importance, then the constant ones, then the rest."""
    ranked = sorted(measured.items(), key=lambda item: -item[1][0])
    listing: Importance = [
        {"feature": name, "importance": round(mean, 6), "std": round(std, 6)}
        for name, (mean, std) in ranked
    ]
    listing += [{"feature": name, "importance": 0.0, "std": 0.0} for name in constant]
    listing += [
        {"feature": name, "importance": None, "std": None} for name in unmeasured
    ]
    return listing


def _scope(
    rows: int,
    held_out: int,
    names: list[str],
    measured: dict[str, tuple[float, float]],
    constant: list[str],
    stopped_by: str | None,
    budget: ImportanceBudget,
    started: float,
) -> dict[str, Any]:
    """What importance was computed on, with a sentence for people."""
    unmeasured = len(names) - len(measured) - len(constant)
    sampled = rows < held_out
    parts = [
        f"on a seeded sample of {rows} of the {held_out} held-out rows "
        "(IMPORTANCE_MAX_ROWS)"
        if sampled
        else f"on all {held_out} held-out rows"
    ]
    if constant:
        parts.append(
            f"{len(constant)} features constant on those rows have importance 0 "
            "without being shuffled"
        )
    if unmeasured:
        limit = (
            f"IMPORTANCE_MAX_FEATURES, {budget.max_features}"
            if stopped_by == "IMPORTANCE_MAX_FEATURES"
            else f"IMPORTANCE_BUDGET_S, {budget.seconds:g} s"
        )
        parts.append(
            f"{len(measured)} of the other {len(measured) + unmeasured} features "
            f"were measured, ranked by {RANKED_BY}; {unmeasured} were not ({limit})"
        )
    return {
        "rows": rows,
        "held_out_rows": held_out,
        "sampled": sampled,
        "features": len(names),
        "measured": len(measured),
        "constant": len(constant),
        "not_measured": unmeasured,
        "ranked_by": RANKED_BY,
        "stopped_by": stopped_by if unmeasured else None,
        "repeats": IMPORTANCE_REPEATS,
        "seconds": round(time.monotonic() - started, 3),
        "complete": not sampled and not unmeasured,
        "note": "Permutation importance computed " + "; ".join(parts) + ".",
    }
