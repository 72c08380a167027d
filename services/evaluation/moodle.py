"""Moodle's evaluation procedure, run on the evaluation queue.

Moodle asks its machine-learning backend whether a model configuration is
good enough before it enables the model (``POST /evaluation``; the gateway's
Moodle app sends this task and waits for its answer). The procedure is the
one of Moodle's reference backend:

1. ``iterations`` times, a random 80/20 split of the labelled samples, seeded
   from ``SEED`` and the iteration number (so a run can be repeated) and not
   stratified. An iteration whose training part lacks a class is skipped.
2. A fresh pipeline of the algorithm the gateway names (the one its Moodle
   trainings use for a dataset of this size), built as a training job builds
   it (``shared.pipelines``, classes weighted as ``balanced``), is fitted on
   the 80 % and scored on the 20 %: accuracy, balanced accuracy, weighted
   precision, recall and F1, and for two classes the ROC AUC.
3. ``score`` is the mean F1, ``score_deviation`` its population standard
   deviation; with no iteration run they are 0 and 1.
4. The status is a set of Moodle's bits: 8 (``NOT_ENOUGH_DATA``) when the
   deviation exceeds ``max_deviation``, 4 (``LOW_SCORE``) when the score is
   below ``min_score``; each failed check adds a sentence to ``info``. With
   no iteration run the status is 8 alone, and ``info`` says why. A score
   measured on fewer than ``FEW_SCORED`` samples adds a sentence saying so
   and leaves the status as it is.

In trained-model mode (``trained`` names a model version and the Moodle
model's features, which the file's columns are by position) nothing is
fitted: the version scores every sample once, and the deviation is 0.

The task returns a plain dict; a failure is ``{"error": {"code", "message"}}``
so the waiting gateway can answer Moodle's error status.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shared import artifacts
from shared.celery_app import MOODLE_EVALUATE_TASK, app
from shared.clients import Clients, get_clients
from shared.errors import InvalidInput, PlatformError
from shared.pipelines import build_pipeline
from shared.settings import get_settings
from shared.targets import CLASSIFICATION

log = logging.getLogger(__name__)
settings = get_settings()

OK = 0
LOW_SCORE = 4
NOT_ENOUGH_DATA = 8
TEST_FRACTION = 0.2
# As the Moodle backend's training jobs: Moodle's targets are rare events.
CLASS_WEIGHT = "balanced"
# Fewer scored samples than this make a score a matter of luck: said in info.
FEW_SCORED = 10
METRICS = ("accuracy", "balanced accuracy", "precision", "recall", "f1_score")


@dataclass
class Scores:
    """Per-iteration metrics, and what happened in each iteration."""

    runs: list[dict[str, float]] = field(default_factory=list)
    aucs: list[float] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # told to Moodle, status kept

    def note_few_scored(self, scored: int) -> None:
        if scored < FEW_SCORED:
            self.notes.append(
                f"Each score was measured on {scored} sample(s) only, too few to "
                f"say much; evaluate with {FEW_SCORED} or more scored samples "
                f"({int(np.ceil(FEW_SCORED / TEST_FRACTION))} or more in the file)."
            )


@app.task(
    name=MOODLE_EVALUATE_TASK,
    ignore_result=False,
    # An evaluation nobody waits for any more is not worth running again.
    acks_late=False,
    soft_time_limit=settings.evaluation_time_limit_s,
    time_limit=settings.evaluation_time_limit_s + 30,
)
def moodle_evaluate(
    tenant: str,
    dataset_id: str,
    target: str,
    features: list[str],
    classes: list[int],
    min_score: float,
    max_deviation: float,
    iterations: int,
    algorithm: str,
    trained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        clients = get_clients()
        X, y = load_samples(clients, tenant, dataset_id, target, features)
        if trained is None:
            scores = cross_check(X, y, classes, iterations, algorithm, settings.seed)
        else:
            scores = score_trained(clients, tenant, trained, X, y, classes)
        return judge(scores, min_score, max_deviation)
    except SoftTimeLimitExceeded:
        message = f"evaluation exceeded {settings.evaluation_time_limit_s} s"
        return {"error": {"code": "timeout", "message": message}}
    except PlatformError as error:
        log.warning("moodle evaluation of %s: %s", dataset_id, error.message)
        return {"error": {"code": error.code, "message": error.message}}
    except Exception as error:  # a worker must outlive any one evaluation
        log.exception("moodle evaluation of %s: unexpected failure", dataset_id)
        message = f"evaluation failed: {type(error).__name__}"
        return {"error": {"code": "internal_error", "message": message}}


def load_samples(
    clients: Clients, tenant: str, dataset_id: str, target: str, features: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    _, frame = clients.datasets.load(tenant, dataset_id)
    return frame[features], frame[target].to_numpy().astype(np.int64)


def cross_check(
    X: pd.DataFrame,
    y: np.ndarray,
    classes: list[int],
    iterations: int,
    algorithm: str,
    seed: int,
) -> Scores:
    """Fit and score a fresh pipeline on ``iterations`` random 80/20 splits."""
    scores = Scores()
    test_size = max(1, int(np.ceil(TEST_FRACTION * len(y))))
    scores.note_few_scored(test_size)
    for iteration in range(iterations):
        generator = np.random.default_rng(seed + iteration)
        order = generator.permutation(len(y))
        test, train = order[:test_size], order[test_size:]
        if len(train) == 0 or set(np.unique(y[train])) != set(classes):
            scores.log.append(
                f"iteration {iteration + 1}: skipped, its training part lacks a class"
            )
            continue
        pipeline = build_pipeline(
            CLASSIFICATION, algorithm, list(X.columns), [], seed, CLASS_WEIGHT
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.fit(X.iloc[train], y[train])
            record(scores, pipeline, X.iloc[test], y[test], classes)
        scores.log.append(
            f"iteration {iteration + 1}: {algorithm} fitted on "
            f"{len(train)} samples, {_shown(scores.runs[-1])} on "
            f"{len(test)}"
        )
    return scores


def score_trained(
    clients: Clients,
    tenant: str,
    trained: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    classes: list[int],
) -> Scores:
    """The stored version scored once on every sample (deviation 0)."""
    version = clients.registry.get_version(tenant, trained["model"], trained["version"])
    given = list(trained.get("features") or [])
    if len(given) != X.shape[1]:
        raise InvalidInput(
            f"the evaluation file has {X.shape[1]} features; {version.model} "
            f"v{version.version} was trained with {len(given)}"
        )
    X = X.set_axis(given, axis=1)[[feature.name for feature in version.features]]
    pipeline = artifacts.load(clients.storage, version)
    scores = Scores()
    scores.note_few_scored(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record(scores, pipeline, X, y, classes)
    scores.log.append(
        f"{version.model} v{version.version} scored on {len(y)} "
        f"samples: {_shown(scores.runs[-1])}"
    )
    return scores


def record(
    scores: Scores, pipeline: Any, X: pd.DataFrame, y: np.ndarray, classes: list[int]
) -> None:
    predicted = np.asarray(pipeline.predict(X)).astype(np.int64)
    scores.runs.append(
        {
            "accuracy": float(accuracy_score(y, predicted)),
            "balanced accuracy": float(balanced_accuracy_score(y, predicted)),
            "precision": float(
                precision_score(y, predicted, average="weighted", zero_division=0)
            ),
            "recall": float(
                recall_score(y, predicted, average="weighted", zero_division=0)
            ),
            "f1_score": float(
                f1_score(y, predicted, average="weighted", zero_division=0)
            ),
        }
    )
    if (
        len(classes) == 2
        and len(np.unique(y)) == 2
        and hasattr(pipeline, "predict_proba")
    ):
        positive = list(pipeline.classes_).index(max(classes))
        proba = np.asarray(pipeline.predict_proba(X))[:, positive]
        scores.aucs.append(float(roc_auc_score(y == max(classes), proba)))


def judge(scores: Scores, min_score: float, max_deviation: float) -> dict[str, Any]:
    """Mean metrics, score and deviation, and Moodle's status bits with reasons."""
    result: dict[str, Any] = {}
    for name in METRICS:
        values = [run[name] for run in scores.runs]
        result[name] = float(np.mean(values)) if values else 0.0
    f1 = [run["f1_score"] for run in scores.runs]
    result["score"] = float(np.mean(f1)) if f1 else 0.0
    result["score_deviation"] = float(np.std(f1)) if f1 else 1.0
    if scores.aucs:
        result["auc"] = float(np.mean(scores.aucs))
        result["auc_deviation"] = float(np.std(scores.aucs))
    status, info = OK, []
    if not scores.runs:
        # Nothing was scored: say so, rather than blame a deviation of 1.
        status |= NOT_ENOUGH_DATA
        info.append(
            "No evaluation iteration could be run: every split left a class "
            "without training samples; more samples of each class are needed."
        )
    elif result["score_deviation"] > max_deviation:
        status |= NOT_ENOUGH_DATA
        info.append(
            f"The evaluation results varied too much: the deviation of the "
            f"score is {result['score_deviation']:.4f}, above the accepted "
            f"{max_deviation:g}; more data may make the model steadier."
        )
    if scores.runs and result["score"] < min_score:
        status |= LOW_SCORE
        info.append(
            f"The model is not good enough: its score (weighted F1) is "
            f"{result['score']:.4f}, below the minimum of {min_score:g}."
        )
    if scores.runs:
        info.extend(scores.notes)
    result.update(
        min_score=min_score,
        accepted_deviation=max_deviation,
        status=status,
        info=info,
        iterations=len(scores.runs),
        log=scores.log + info,
    )
    return result


def _shown(run: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in run.items())
