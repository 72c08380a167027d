"""The training task: load the dataset, fit a pipeline, register a candidate.

The task is idempotent. A message delivered again (its worker died) finds
the job record and carries on from where the record says the job is; a
version registered by an earlier attempt is found by its job id and reused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from celery import Task

from services.training.pipeline import (
    Selection,
    check_target,
    choose_algorithm,
    split_indices,
)
from services.training.splits import fold_count_for_groups, grouped_split
from services.training.tuning import Tuning, tune
from shared import artifacts, costs, keys
from shared.celery_app import TRAIN_TASK, TRAINING_QUEUE, app
from shared.clients import Clients
from shared.dispatch import hand_on
from shared.job_steps import run_step
from shared.jobs import JobRecord, JobRequest, JobStatus
from shared.logs import job_context
from shared.pipelines import build_pipeline
from shared.registry import ArtifactRef, FeatureSpec, VersionRecord
from shared.settings import get_settings
from shared.targets import target_values

log = logging.getLogger(__name__)
settings = get_settings()


@dataclass
class Fitted:
    pipeline: Any
    algorithm: str
    selection: Selection | None
    tuning: Tuning | None
    fit_seconds: float
    train_rows: int
    test_rows: list[int]
    reference: dict[str, Any]


@app.task(
    name=TRAIN_TASK,
    bind=True,
    soft_time_limit=settings.training_time_limit_s,
    time_limit=settings.training_time_limit_s + 60,
)
def train(task: Task, tenant: str, job_id: str) -> None:
    with job_context(job_id=job_id, tenant=tenant, queue=TRAINING_QUEUE):
        train_job(task, tenant, job_id)


def train_job(task: Task, tenant: str, job_id: str) -> None:
    run_step(
        task,
        tenant,
        job_id,
        JobStatus.TRAINING,
        ready_to_train,
        run_training,
        settings.training_time_limit_s,
    )


def ready_to_train(record: JobRecord) -> bool:
    return record.status in (JobStatus.QUEUED, JobStatus.TRAINING)


def run_training(clients: Clients, record: JobRecord) -> None:
    with costs.measure() as cost:
        version = fit_and_register(clients, record)
        spent = cost.summary()

    costs.report(clients.connection, "training", spent)
    clients.jobs.set_status(
        record.tenant,
        record.id,
        JobStatus.EVALUATING,
        version=version,
        costs={**record.costs, "training": spent},
    )
    hand_on(
        clients.connection,
        record.tenant,
        record.id,
        JobStatus.EVALUATING,
        settings.visibility_timeout_s,
    )


def fit_and_register(clients: Clients, record: JobRecord) -> int:
    request = record.request
    schema, frame = clients.datasets.load(record.tenant, request.dataset_id)

    fitted = fit(frame, record)

    data = artifacts.dump(fitted.pipeline)
    key = keys.job_artifact(record.tenant, record.id)
    digest = clients.storage.put_verified(key, data)
    version = VersionRecord(
        tenant=record.tenant,
        model=request.model,
        job_id=record.id,
        dataset_id=request.dataset_id,
        task=request.task,
        target=request.target,
        features=[
            FeatureSpec(name=name, type=_column_type(schema, name))
            for name in request.features
        ],
        id_column=request.id_column,
        algorithm=fitted.algorithm,
        params=_estimator_params(fitted.pipeline),
        seed=settings.seed,
        classes=_classes(fitted.pipeline),
        has_proba=hasattr(fitted.pipeline, "predict_proba"),
        artifact=ArtifactRef(key=key, sha256=digest, bytes=len(data)),
        libraries=artifacts.library_versions(),
        fit_seconds=round(fitted.fit_seconds, 3),
        rows={"train": fitted.train_rows, "test": len(fitted.test_rows)},
        test_rows=fitted.test_rows,
        selection=_selection_summary(fitted.selection),
        tuning=None if fitted.tuning is None else fitted.tuning.summary(),
        class_weight=request.class_weight,
        group_split_column=request.group_split_column,
        reference=fitted.reference,
    )
    number = clients.registry.register(record.tenant, version)
    log.info(
        "training job %s: %s v%d fitted with %s in %.1f s",
        record.id,
        request.model,
        number,
        fitted.algorithm,
        fitted.fit_seconds,
    )
    return number


def fit(frame: pd.DataFrame, record: JobRecord) -> Fitted:
    """Split the labelled rows with the seed, choose, tune and fit the pipeline."""
    request = record.request
    labelled = frame[frame[request.target].notna()]
    X = labelled[request.features]
    y = target_values(labelled[request.target], request.task)
    check_target(y, request.task, request.target)
    numeric = [
        name for name in request.features if pd.api.types.is_numeric_dtype(X[name])
    ]
    categorical = [name for name in request.features if name not in numeric]
    groups = None
    if request.group_split_column:
        groups = labelled[request.group_split_column].reset_index(drop=True)

    train_at, test_at = split_rows(y, groups, request)
    X_train, y_train = X.iloc[train_at], y.iloc[train_at]
    groups_train = None if groups is None else groups.iloc[train_at]

    started = time.perf_counter()
    selection, tuning = None, None
    algorithm = request.algorithm
    if algorithm == "auto":
        selection = choose_algorithm(
            X_train,
            y_train,
            request.task,
            numeric,
            categorical,
            settings.seed,
            settings.auto_budget_s,
            settings.auto_max_rows,
            settings.cv_folds,
            request.class_weight,
            groups_train,
        )
        algorithm = selection.algorithm
    pipeline = build_pipeline(
        request.task,
        algorithm,
        numeric,
        categorical,
        settings.seed,
        request.class_weight,
    )
    if request.tuning is not None:
        tuning = tune_pipeline(
            X_train, y_train, groups_train, request, algorithm, numeric, categorical
        )
        pipeline.set_params(**tuning.params)
    pipeline.fit(X_train, y_train)
    elapsed = time.perf_counter() - started

    positions = np.flatnonzero(frame[request.target].notna().to_numpy())
    return Fitted(
        pipeline=pipeline,
        algorithm=algorithm,
        selection=selection,
        tuning=tuning,
        fit_seconds=elapsed,
        train_rows=len(train_at),
        test_rows=[int(position) for position in positions[test_at]],
        reference=reference_values(X_train, numeric),
    )


def split_rows(
    y: pd.Series, groups: pd.Series | None, request: JobRequest
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions to fit and to hold out; with ``hold_out`` off, all to fit."""
    if not request.hold_out:
        return np.arange(len(y)), np.array([], dtype=int)
    if groups is None:
        return split_indices(
            y.to_numpy(),
            request.task,
            settings.test_fraction,
            settings.seed,
            settings.min_training_rows,
        )
    return grouped_split(
        groups, settings.test_fraction, settings.seed, request.group_split_column or ""
    )


def tune_pipeline(
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series | None,
    request: JobRequest,
    algorithm: str,
    numeric: list[str],
    categorical: list[str],
) -> Tuning:
    budget = request.tuning
    assert budget is not None
    folds = (
        settings.cv_folds
        if groups is None
        else fold_count_for_groups(groups, settings.cv_folds)
    )
    if request.task == "classification":
        folds = min(folds, max(2, int(y.value_counts().min())))
    scoring = tuning_scoring(request.task, y)
    return tune(
        X,
        y,
        groups,
        task=request.task,
        algorithm=algorithm,
        numeric=numeric,
        categorical=categorical,
        seed=settings.seed,
        trials=budget.trials,
        seconds=budget.seconds,
        folds=folds,
        scoring=scoring,
        class_weight=request.class_weight,
    )


def tuning_scoring(task: str, y: pd.Series) -> str:
    if task == "regression":
        return "r2"
    return "roc_auc" if y.nunique() == 2 else "balanced_accuracy"


def reference_values(X: pd.DataFrame, numeric: list[str]) -> dict[str, Any]:
    """A typical student: the median of each number, the commonest of each category.

    Explanations compare a student with this reference, one feature at a time.
    """
    reference: dict[str, Any] = {}
    for name in X.columns:
        values = X[name].dropna()
        if values.empty:
            reference[name] = None
        elif name in numeric:
            reference[name] = float(values.median())
        else:
            reference[name] = str(values.mode().iloc[0])
    return reference


def _column_type(schema: Any, name: str) -> str:
    column = schema.column(name)
    return str(column.type) if column else "numeric"


def _classes(pipeline: Any) -> list[Any] | None:
    classes = getattr(pipeline, "classes_", None)
    return None if classes is None else [_plain(value) for value in classes]


def _estimator_params(pipeline: Any) -> dict[str, Any]:
    estimator = pipeline.steps[-1][1]
    return {name: _plain(value) for name, value in estimator.get_params().items()}


def _selection_summary(selection: Selection | None) -> dict[str, Any] | None:
    if selection is None:
        return None
    return {
        "scoring": selection.scoring,
        "folds": selection.folds,
        "scores": {name: _plain(score) for name, score in selection.scores.items()},
        "skipped": selection.skipped,
        "notes": selection.notes,
    }


def _plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars become int, float or str."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
