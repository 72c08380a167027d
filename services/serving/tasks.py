"""The serving task: predictions from a version, loaded from S3 once.

Loaded pipelines are cached by (tenant, model, version); versions never
change, so a promotion reaches serving simply because the gateway names
the new champion's version in the next request. At load, the pipeline's
preprocessing is compiled into array operations (services/serving/compiled.py)
when it gives scikit-learn's results; rows then skip the DataFrame. The
answer goes straight to the caller's reply address (shared/replies.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis
from sklearn.pipeline import Pipeline

from services.serving.compiled import CompiledTransform, compile_pipeline
from shared import artifacts, metrics, replies
from shared.celery_app import PREDICT_TASK, SERVING_QUEUE, app
from shared.clients import Clients, get_clients
from shared.errors import PlatformError
from shared.logs import job_context
from shared.registry import VersionRecord
from shared.settings import get_settings

log = logging.getLogger(__name__)
settings = get_settings()

CacheKey = tuple[str, str, int]
TOP_REASONS = 3


@dataclass(frozen=True)
class Loaded:
    """A version ready to serve: its record, its pipeline, its compiled transform."""

    record: VersionRecord
    pipeline: Any
    compiled: CompiledTransform | None


class ModelCache:
    """The most recently used fitted pipelines of this worker process."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[CacheKey, Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, clients: Clients, tenant: str, model: str, version: int) -> Loaded:
        key = (tenant, model, version)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        record = clients.registry.get_version(tenant, model, version)
        pipeline = artifacts.load(clients.storage, record)
        loaded = Loaded(record, pipeline, compile_pipeline(record, pipeline))
        with self._lock:
            self._entries[key] = loaded
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        log.info(
            "serving: loaded %s/%s v%d (%s transform)",
            tenant,
            model,
            version,
            "compiled" if loaded.compiled else "scikit-learn",
        )
        return loaded


cache = ModelCache(settings.serving_cache_versions)


@app.task(
    name=PREDICT_TASK,
    # The answer goes to the caller's reply address (shared/replies.py).
    ignore_result=True,
    # A prediction nobody waits for any more is not worth running again.
    acks_late=False,
    soft_time_limit=settings.serving_time_limit_s,
    time_limit=settings.serving_time_limit_s + 5,
)
def predict(
    tenant: str,
    model: str,
    version: int,
    columns: list[str],
    rows: list[list[Any]],
    explain: bool = False,
    reply_to: str | None = None,
    correlation: str | None = None,
) -> dict[str, Any]:
    with job_context(tenant=tenant, model=model, version=version, queue=SERVING_QUEUE):
        answer = serve(tenant, model, version, columns, rows, explain)
        if reply_to is not None:
            deliver(reply_to, correlation or "", answer)
        return answer


def deliver(address: str, correlation: str, answer: dict[str, Any]) -> None:
    try:
        replies.push(get_clients().connection, address, correlation, answer)
    except redis.RedisError as error:
        # The caller times out (504); the worker goes on with the next task.
        log.warning("serving: answer not delivered: %s", error)


def serve(
    tenant: str,
    model: str,
    version: int,
    columns: list[str],
    rows: list[list[Any]],
    explain: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        loaded = cache.get(get_clients(), tenant, model, version)
        answer = run_loaded(loaded, columns, rows)
        if explain:
            answer["explanations"] = explain_rows(
                loaded.record, loaded.pipeline, columns, rows
            )
        metrics.observe_later(
            get_clients().connection,
            "eduml_inference_seconds",
            {},
            time.perf_counter() - started,
        )
        return answer
    except PlatformError as error:
        log.warning("serving: %s v%d: %s", model, version, error.message)
        return {"error": {"code": error.code, "message": error.message}}
    except Exception as error:  # a worker must outlive any request
        # The exception's text may quote feature values: log its type only.
        log.error(
            "serving: %s v%d: prediction failed with %s",
            model,
            version,
            type(error).__name__,
        )
        message = (
            f"{model} v{version} could not predict these instances "
            f"({type(error).__name__})"
        )
        return {"error": {"code": "invalid_input", "message": message}}


def run_loaded(
    loaded: Loaded, columns: list[str], rows: list[list[Any]]
) -> dict[str, Any]:
    """The compiled transform's answer when it applies, else scikit-learn's."""
    record = loaded.record
    if loaded.compiled is not None and columns == record_columns(record):
        try:
            matrix = loaded.compiled.transform(rows)
        except (TypeError, ValueError):  # a value the gateway did not clean
            matrix = None
        if matrix is not None:
            estimator = loaded.pipeline.steps[-1][1]
            return answer_of(record, *estimator_outputs(record, estimator, matrix))
    return run_pipeline(record, loaded.pipeline, columns, rows)


def record_columns(record: VersionRecord) -> list[str]:
    return [feature.name for feature in record.features]


def estimator_outputs(
    record: VersionRecord, estimator: Any, features: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    predictions = np.asarray(estimator.predict(features))
    if not record.has_proba:
        return predictions, None
    return predictions, np.asarray(estimator.predict_proba(features), dtype=float)


def answer_of(
    record: VersionRecord, predictions: np.ndarray, probabilities: np.ndarray | None
) -> dict[str, Any]:
    return {
        "predictions": [_plain(value) for value in predictions],
        "probabilities": None if probabilities is None else _finite_rows(probabilities),
    }


def run_pipeline(
    record: VersionRecord, pipeline: Any, columns: list[str], rows: list[list[Any]]
) -> dict[str, Any]:
    frame = feature_frame(record, columns, rows)
    return answer_of(record, *predict_frame(record, pipeline, frame))


def predict_frame(
    record: VersionRecord, pipeline: Any, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and class probabilities, preprocessing the rows only once.

    ``Pipeline.predict`` and ``Pipeline.predict_proba`` each run every
    transformer and then the final estimator; here the transformers run once
    and the final estimator is asked twice, which gives the same numbers at
    about half the cost (the transformers are most of it for a few rows).
    """
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        predictions = np.asarray(pipeline.predict(frame))
        if not record.has_proba:
            return predictions, None
        return predictions, np.asarray(pipeline.predict_proba(frame), dtype=float)
    features: Any = frame
    for _, transformer in pipeline.steps[:-1]:
        if transformer is not None and transformer != "passthrough":
            features = transformer.transform(features)
    return estimator_outputs(record, pipeline.steps[-1][1], features)


def feature_frame(
    record: VersionRecord, columns: list[str], rows: list[list[Any]]
) -> pd.DataFrame:
    """The rows as the pipeline saw its training data: numbers as floats, text as str.

    Built column by column from plain lists: no frame of the raw rows first,
    and no type inference on them.
    """
    position = {name: index for index, name in enumerate(columns)}
    data: dict[str, Any] = {}
    for feature in record.features:
        index = position[feature.name]
        values = [row[index] for row in rows]
        if feature.type == "numeric":
            data[feature.name] = _numeric_column(values)
        else:
            data[feature.name] = pd.Series(
                [np.nan if _missing(value) else value for value in values],
                dtype=object,
            )
    return pd.DataFrame(data)


def _numeric_column(values: list[Any]) -> np.ndarray:
    """Floats, NaN for what is missing or not a number (as ``pd.to_numeric``)."""
    try:
        return np.array(
            [np.nan if value is None else value for value in values], dtype=float
        )
    except (TypeError, ValueError):
        return np.asarray(
            pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"),
            dtype=float,
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def explain_rows(
    record: VersionRecord, pipeline: Any, columns: list[str], rows: list[list[Any]]
) -> list[list[dict[str, Any]]]:
    """The top reasons per student: how much each feature moves the prediction.

    A feature's contribution is the prediction minus the prediction with that
    feature set to the typical student's value (the training median or the
    commonest category); for a classifier, the probability of the positive
    class (or of the predicted class when there are more than two).
    """
    frame = feature_frame(record, columns, rows)
    explained = _explained_column(record, pipeline, frame)
    base = _explained_output(record, pipeline, frame, explained)
    contributions = {}
    for feature in record.features:
        changed = frame.copy()
        reference = record.reference.get(feature.name)
        changed[feature.name] = np.nan if reference is None else reference
        if feature.type != "numeric":
            changed[feature.name] = changed[feature.name].astype(object)
        contributions[feature.name] = base - _explained_output(
            record, pipeline, changed, explained
        )
    reasons = []
    for position in range(len(frame)):
        ranked = sorted(
            contributions, key=lambda name: -abs(contributions[name][position])
        )
        reasons.append(
            [
                {
                    "feature": name,
                    "contribution": round(float(contributions[name][position]), 6),
                }
                for name in ranked[:TOP_REASONS]
            ]
        )
    return reasons


def _explained_column(
    record: VersionRecord, pipeline: Any, frame: pd.DataFrame
) -> np.ndarray:
    """Per row, the probability column explained: positive or predicted class."""
    if not record.has_proba:
        return np.zeros(len(frame), dtype=int)
    proba = np.asarray(pipeline.predict_proba(frame), dtype=float)
    if proba.shape[1] == 2:
        return np.ones(len(frame), dtype=int)
    return proba.argmax(axis=1)


def _explained_output(
    record: VersionRecord, pipeline: Any, frame: pd.DataFrame, column: np.ndarray
) -> np.ndarray:
    if not record.has_proba:
        return np.asarray(pipeline.predict(frame), dtype=float)
    proba = np.asarray(pipeline.predict_proba(frame), dtype=float)
    return proba[np.arange(len(frame)), column]


def _finite_rows(probabilities: np.ndarray) -> list[list[float | None]]:
    return [
        [float(p) if np.isfinite(p) else None for p in row] for row in probabilities
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
