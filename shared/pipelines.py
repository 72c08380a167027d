"""The scikit-learn pipelines the platform fits, built in one place.

A pipeline is preprocessing (a ColumnTransformer that picks its columns by
name, so extra columns and any column order are fine) followed by one
estimator. Everything in it is a plain scikit-learn object: loading a pickled
version needs scikit-learn and nothing of ours. Training jobs build them
(services/training/pipeline.py), and so does Moodle's evaluation procedure
(services/evaluation/moodle.py), which must fit what Moodle's trainings fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shared.errors import InvalidInput
from shared.targets import TASKS

ALGORITHMS = ("linear", "random_forest", "hist_gradient_boosting")
# "auto" is resolved by choose_algorithm (services/training) into one of these.
AUTO = "auto"
CLASS_WEIGHTS = (None, "balanced")

MISSING_CATEGORY = "missing"
# Rarer categories share one "infrequent" column, so an id-like column
# cannot blow up the width of the (dense) encoded table.
MAX_ONE_HOT_CATEGORIES = 50
# lbfgs converges well within this on standardized features.
LOGISTIC_MAX_ITER = 1_000
RIDGE_ALPHA = 1.0
FOREST_TREES = 200
FOREST_MIN_SAMPLES_LEAF = 5
# One core per estimator: a worker process runs one job at a time.
ESTIMATOR_JOBS = 1


def build_pipeline(
    task: str,
    algorithm: str,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    class_weight: str | None = None,
) -> Pipeline:
    """An unfitted pipeline: preprocessing by column name, then one estimator."""
    check_task(task)
    _check_algorithm(algorithm)
    _check_class_weight(task, class_weight)

    preprocess = _preprocessor(numeric, categorical)
    estimator = _estimator(task, algorithm, seed, class_weight)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def _preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    _check_feature_columns(numeric, categorical)
    parts: list[tuple[str, Pipeline, list[str]]] = []
    if numeric:
        parts.append(("numeric", _numeric_steps(), list(numeric)))
    if categorical:
        parts.append(("categorical", _categorical_steps(), list(categorical)))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _numeric_steps() -> Pipeline:
    # The indicator only appears for columns that had missing values at fit.
    imputer = SimpleImputer(strategy="median", add_indicator=True)
    return make_pipeline(imputer, StandardScaler())


def _categorical_steps() -> Pipeline:
    # SimpleImputer sees either NaN or None as missing, never both: one each.
    nan_imputer = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
    none_imputer = SimpleImputer(
        missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY
    )
    encoder = OneHotEncoder(
        handle_unknown="ignore",
        max_categories=MAX_ONE_HOT_CATEGORIES,
        sparse_output=False,
    )
    return make_pipeline(nan_imputer, none_imputer, encoder)


def _estimator(
    task: str, algorithm: str, seed: int, class_weight: str | None
) -> BaseEstimator:
    if task == "regression":
        return _regressor(algorithm, seed)
    return _classifier(algorithm, seed, class_weight)


def _classifier(algorithm: str, seed: int, class_weight: str | None) -> BaseEstimator:
    if algorithm == "linear":
        return LogisticRegression(max_iter=LOGISTIC_MAX_ITER, class_weight=class_weight)
    if algorithm == "random_forest":
        return RandomForestClassifier(
            n_estimators=FOREST_TREES,
            min_samples_leaf=FOREST_MIN_SAMPLES_LEAF,
            class_weight=class_weight,
            n_jobs=ESTIMATOR_JOBS,
            random_state=seed,
        )
    return HistGradientBoostingClassifier(class_weight=class_weight, random_state=seed)


def _regressor(algorithm: str, seed: int) -> BaseEstimator:
    if algorithm == "linear":
        return Ridge(alpha=RIDGE_ALPHA)
    if algorithm == "random_forest":
        return RandomForestRegressor(
            n_estimators=FOREST_TREES,
            min_samples_leaf=FOREST_MIN_SAMPLES_LEAF,
            n_jobs=ESTIMATOR_JOBS,
            random_state=seed,
        )
    return HistGradientBoostingRegressor(random_state=seed)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {listing(TASKS)} (received {task!r})")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidInput(
            f"algorithm must be one of {listing(ALGORITHMS)}, or {AUTO!r} "
            f"resolved first by choose_algorithm (received {algorithm!r})"
        )


def _check_class_weight(task: str, class_weight: str | None) -> None:
    if class_weight not in CLASS_WEIGHTS:
        raise InvalidInput(
            f"class_weight must be None or 'balanced' (received {class_weight!r})"
        )
    if task == "regression" and class_weight is not None:
        raise InvalidInput(
            "class_weight applies to classification only; a regression "
            f"pipeline takes None (received {class_weight!r})"
        )


def _check_feature_columns(numeric: list[str], categorical: list[str]) -> None:
    if not numeric and not categorical:
        raise InvalidInput(
            "feature columns: a pipeline needs at least one numeric or "
            "categorical column (received none)"
        )
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise InvalidInput(
            "feature columns: a column is either numeric or categorical, "
            f"not both (received both for {both!r})"
        )


def listing(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)
