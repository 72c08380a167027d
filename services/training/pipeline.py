"""The choice of a training job's pipeline, and the checks before fitting.

The pipelines themselves are built by ``shared.pipelines.build_pipeline``.
The checks here run before any fitting: whether the target can be learned
(``check_target``), whether there are rows enough for the seeded train/test
split (``split_indices``) and for cross-validation (``choose_algorithm``).
They raise ``InvalidInput`` with messages meant for the person who uploaded
the dataset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score, train_test_split

from services.training.splits import splitter
from shared.errors import InvalidInput
from shared.pipelines import build_pipeline, check_task, listing

# Cheapest first, so a tight budget still gets the most informative tries.
SELECTION_ORDER = ("linear", "hist_gradient_boosting", "random_forest")

# Past this many classes a target is almost always a numeric score.
MAX_CLASSES = 50
MIN_FOLDS = 2
MAX_TEST_FRACTION = 0.5


@dataclass
class Selection:
    """What choose_algorithm tried and what it picked."""

    algorithm: str
    scores: dict[str, float]
    skipped: list[str]
    folds: int
    scoring: str
    notes: list[str]


# --- target checks ----------------------------------------------------------


def check_target(y: pd.Series, task: str, column: str) -> None:
    """Raise InvalidInput when the target cannot be learned for the task.

    Rows with a missing target are ignored here (the caller drops them).
    """
    check_task(task)
    usable = pd.Series(y).dropna()

    _check_usable_rows(usable, len(y), column)
    if task == "regression":
        _check_numeric_target(usable, column)
    else:
        _check_class_count(usable, column)


def _check_usable_rows(usable: pd.Series, total: int, column: str) -> None:
    if len(usable) < 2:
        raise InvalidInput(
            f"target column {column!r} has {_rows(len(usable))} with a value "
            f"({total - len(usable)} missing); training needs at least 2"
        )


def _check_numeric_target(usable: pd.Series, column: str) -> None:
    if not pd.api.types.is_numeric_dtype(usable):
        raise InvalidInput(
            f"target column {column!r} is categorical; regression needs a "
            f"numeric target (received values such as {_examples(usable)})"
        )


def _check_class_count(usable: pd.Series, column: str) -> None:
    classes = usable.unique()
    if len(classes) < 2:
        raise InvalidInput(
            f"target column {column!r} has only one class "
            f"({_label(classes[0])}); classification needs at least two"
        )
    if len(classes) > MAX_CLASSES:
        raise InvalidInput(
            f"target column {column!r} has {len(classes)} classes; "
            f"classification allows at most {MAX_CLASSES} (received values "
            f"such as {_examples(usable)}); for a numeric score use regression"
        )


# --- train/test split -------------------------------------------------------


def split_indices(
    y: Any, task: str, test_fraction: float, seed: int, min_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions of a seeded train/test split.

    Classification splits are stratified when every class has two rows or
    more and both sides can hold every class; otherwise the split is plain.
    """
    check_task(task)
    _check_test_fraction(test_fraction)
    labels = pd.Series(np.asarray(y))
    _check_enough_rows(len(labels), test_fraction, min_rows)

    stratify = labels if _can_stratify(labels, task, test_fraction) else None
    train, test = train_test_split(
        np.arange(len(labels)),
        test_size=test_fraction,
        random_state=seed,
        stratify=stratify,
    )
    return np.sort(train), np.sort(test)


def _split_sizes(n_rows: int, test_fraction: float) -> tuple[int, int]:
    """Train and test sizes, rounded the way train_test_split rounds them."""
    n_test = math.ceil(test_fraction * n_rows)
    return n_rows - n_test, n_test


def _can_stratify(labels: pd.Series, task: str, test_fraction: float) -> bool:
    if task != "classification":
        return False
    counts = labels.value_counts()
    n_train, n_test = _split_sizes(len(labels), test_fraction)
    return counts.min() >= 2 and min(n_train, n_test) >= len(counts)


def _check_test_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction <= MAX_TEST_FRACTION:
        raise InvalidInput(
            f"test_fraction must be above 0 and at most {MAX_TEST_FRACTION} "
            f"(received {test_fraction!r})"
        )


def _check_enough_rows(n_rows: int, test_fraction: float, min_rows: int) -> None:
    needed = max(min_rows, 2)
    if n_rows >= needed:
        return
    n_train, n_test = _split_sizes(needed, test_fraction)
    raise InvalidInput(
        f"dataset has {_rows(n_rows)}; training needs at least {needed} "
        f"({n_train} to train, {n_test} to test)"
    )


# --- algorithm selection ----------------------------------------------------


def choose_algorithm(
    X: pd.DataFrame,
    y: Any,
    task: str,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    budget_s: float,
    max_rows: int,
    folds: int,
    class_weight: str | None = None,
    groups: pd.Series | None = None,
) -> Selection:
    """Cross-validate the algorithms cheapest first and pick the best mean score.

    With ``groups``, no fold splits a group (the students of one school).

    Once ``budget_s`` seconds have passed no new algorithm is started (the
    first always runs). At most ``max_rows`` rows take part: a seeded sample,
    stratified for classification.
    """
    check_task(task)
    labels = pd.Series(np.asarray(y))
    notes: list[str] = []
    folds = _fold_count(labels, task, folds, notes)
    rows = _sample_rows(labels, task, max_rows, folds, seed, notes)

    X_cv, y_cv = X.iloc[rows], labels.iloc[rows]
    groups_cv = None if groups is None else groups.iloc[rows].to_numpy()
    if groups_cv is not None:
        folds = min(folds, max(2, len(np.unique(groups_cv.astype(str)))))
    scoring = _scoring(task, labels)
    cv = splitter(task, folds, seed, groups_cv is not None)

    def cv_score(algorithm: str) -> float:
        pipeline = build_pipeline(
            task, algorithm, numeric, categorical, seed, class_weight
        )
        scores = cross_val_score(
            pipeline,
            X_cv,
            y_cv,
            groups=groups_cv,
            scoring=scoring,
            cv=cv,
            error_score=np.nan,
        )
        return float(np.mean(scores))

    scores, skipped = _score_within_budget(cv_score, budget_s)
    best = _best(scores, notes)
    return Selection(best, _finite(scores), skipped, folds, scoring, notes)


def _fold_count(labels: pd.Series, task: str, folds: int, notes: list[str]) -> int:
    """The folds asked for, lowered to what the rows allow (with a note)."""
    if folds < MIN_FOLDS:
        raise InvalidInput(
            f"folds: cross-validation needs at least {MIN_FOLDS} (received {folds!r})"
        )
    limit, reason = _fold_limit(labels, task)
    if limit >= folds:
        return folds
    notes.append(f"lowered cross-validation folds from {folds} to {limit}: {reason}")
    return limit


def _fold_limit(labels: pd.Series, task: str) -> tuple[int, str]:
    """Most folds the rows allow, and why; raise when fewer than two."""
    if task == "regression":
        limit, reason = len(labels), f"dataset has {_rows(len(labels))}"
        need = "cross-validation needs at least 2 rows"
    else:
        counts = labels.value_counts()
        limit = int(counts.min())
        reason = f"smallest class {_label(counts.idxmin())} has {_rows(limit)}"
        need = "cross-validation needs at least 2 per class"
    if limit < MIN_FOLDS:
        raise InvalidInput(f"{reason}; {need}")
    return limit, reason


def _sample_rows(
    labels: pd.Series,
    task: str,
    max_rows: int,
    folds: int,
    seed: int,
    notes: list[str],
) -> np.ndarray:
    """Sorted positions of at most max_rows rows, drawn with the seed."""
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    if task == "regression":
        rows = rng.choice(len(labels), size=max_rows, replace=False)
    else:
        rows = _stratified_sample(labels, max_rows, folds, rng)
    notes.append(
        f"cross-validated on a seeded sample of {len(rows)} of {len(labels)} rows"
    )
    return np.sort(rows)


def _stratified_sample(
    labels: pd.Series, max_rows: int, folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows drawn class by class; every class keeps enough rows for the folds."""
    quotas = _class_quotas(labels.value_counts().sort_index(), max_rows, folds)
    values = labels.to_numpy()
    picks = [
        rng.choice(np.flatnonzero(values == label), size=quota, replace=False)
        for label, quota in quotas.items()
    ]
    return np.concatenate(picks)


def _class_quotas(counts: pd.Series, max_rows: int, floor: int) -> pd.Series:
    """Rows per class: ``floor`` each (or all a class has), the rest pro rata.

    Shares are rounded down, then the rows left over go to the classes with
    the largest remainders, so the quotas add up to max_rows exactly (more
    only when the floors alone do).
    """
    kept = counts.clip(upper=floor)
    rest = counts - kept
    spare = min(max(max_rows - int(kept.sum()), 0), int(rest.sum()))
    shares = rest * spare / max(int(rest.sum()), 1)
    extra = np.floor(shares).astype(int)
    leftover = spare - int(extra.sum())
    extra.loc[(shares - extra).nlargest(leftover).index] += 1
    return kept + extra


def _scoring(task: str, labels: pd.Series) -> str:
    if task == "regression":
        return "r2"
    return "roc_auc" if labels.nunique() == 2 else "f1_macro"


def _score_within_budget(
    cv_score: Callable[[str], float], budget_s: float
) -> tuple[dict[str, float], list[str]]:
    """Scores in SELECTION_ORDER; once over budget the rest are skipped."""
    started = time.monotonic()
    scores: dict[str, float] = {}
    skipped: list[str] = []
    for position, algorithm in enumerate(SELECTION_ORDER):
        if position > 0 and time.monotonic() - started > budget_s:
            skipped.append(algorithm)
            continue
        scores[algorithm] = cv_score(algorithm)
    return scores, skipped


def _best(scores: dict[str, float], notes: list[str]) -> str:
    failed = [name for name, score in scores.items() if not math.isfinite(score)]
    for name in failed:
        notes.append(f"{name} gave no cross-validation score: a fold failed")
    finite = _finite(scores)
    if not finite:
        raise InvalidInput(
            "cross-validation: no algorithm could be scored on this dataset "
            f"(tried {listing(list(scores))})"
        )
    return max(finite, key=finite.__getitem__)


def _finite(scores: dict[str, float]) -> dict[str, float]:
    return {name: score for name, score in scores.items() if math.isfinite(score)}


# --- message helpers --------------------------------------------------------


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _label(value: object) -> str:
    """A class label as messages show it: 1 for 1.0, 'pass' for pass."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _examples(values: pd.Series, count: int = 2) -> str:
    return ", ".join(_label(value) for value in values.unique()[:count])
