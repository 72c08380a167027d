"""Moodle's requests carried out with the platform's datasets, jobs and queues.

Each method answers what Moodle expects, synchronously: it waits for the
training job, the serving task or the evaluation task it sends, at most
``MOODLE_WAIT_S`` (predictions: ``PREDICT_TIMEOUT_S`` per 1,000 samples).

- Training is incremental: Moodle sends each sample once. The samples of
  every batch are appended to those received before for the model and stored
  as a new platform dataset, and a normal training job fits the model on all
  of them. The version it registers serves Moodle's predictions even when the
  platform's evaluation would have kept the previous champion (or failed to
  finish its report), because Moodle expects every training to take effect;
  the version is promoted with an audit entry saying so. A batch is kept only
  when its training succeeds, as Moodle sends again a batch whose training
  failed.
- Fewer samples than a normal job needs (``MIN_TRAINING_ROWS``, two of each
  class) are trained all the same, as the reference backend trains on
  anything it receives: a logistic regression fitted on every sample, none
  held out, so the platform registers the version without evaluating it.
  The platform's own job checks stay as strict for ``/v1``.
- Algorithm: a random forest below ``LARGE_DATASET_ROWS`` samples,
  histogram gradient boosting from there on, classes weighted as
  ``balanced``. A logistic regression would be steadier on few samples but
  cannot follow a boundary that is not a straight line; on 100 samples of
  such a boundary it scored below 0.7 in a third of the draws, the forest in
  one in twenty. Moodle's targets are rare events (the students at risk, a
  few in ten), and Moodle ignores the predictions of the common class:
  unweighted, the model would mostly predict that class and flag almost
  nobody. Evaluation uses the same rule.
- Export gives a zip of the samples and the algorithm; import trains the
  same model again from them through a training job, so no uploaded pickle is
  ever loaded (a zip from ``/export`` carries the model's training samples:
  indicator values and labels, no sample ids).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError

from services.gateway.job_checks import check_job
from services.gateway.moodle import archive
from services.gateway.moodle.csvfile import (
    MoodleFile,
    read_labelled,
    read_unlabelled,
    write_labelled,
)
from services.gateway.moodle.store import MoodleModel, MoodleStore, model_name
from services.gateway.predictions import run_prediction
from services.gateway.routes.versions import change_champion
from services.gateway.schemas import Algorithm, JobCreate
from shared.celery_app import MOODLE_EVALUATE_TASK, app
from shared.clients import Clients
from shared.dataset_store import DatasetSchema, content_id
from shared.datasets import NUMERIC, ColumnInfo, ParsedTable, to_stored_csv
from shared.dispatch import dispatch
from shared.errors import Conflict, DependencyUnavailable, InvalidInput, PlatformError
from shared.jobs import JobRecord, JobStatus
from shared.keys import moodle_training
from shared.leases import Lease
from shared.policy import get_policy, model_gates

log = logging.getLogger(__name__)

# Moodle's status codes (core_analytics\model).
OK = 0
GENERAL_ERROR = 1
NO_DATASET = 2
NOT_ENOUGH_DATA = 8
# The reference backend's words, which Moodle's tests compare.
NOT_TRAINED = "Provided model have not been trained yet"

LARGE_DATASET_ROWS = 1_000
LINEAR: Algorithm = "linear"
FOREST: Algorithm = "random_forest"
BOOSTING: Algorithm = "hist_gradient_boosting"
ALGORITHMS: tuple[Algorithm, ...] = (LINEAR, FOREST, BOOSTING)
# Moodle's targets are imbalanced; see the module docstring.
CLASS_WEIGHT: Literal["balanced"] = "balanced"
MIN_PER_CLASS = 2
# A set too small for a normal job is fitted on every sample: one of each class.
TINY_MIN_ROWS = 1
TINY_MIN_PER_CLASS = 1
JOB_POLL_S = 1.0
TRAINING_TURN_POLL_S = 0.2
MAX_ITERATIONS = 100
PROMOTION_ATTEMPTS = 3


@dataclass(frozen=True)
class Caller:
    """The Moodle user of a request and the tenant its models belong to."""

    user: str
    tenant: str


def algorithm_for(samples: int) -> Algorithm:
    return FOREST if samples < LARGE_DATASET_ROWS else BOOSTING


class MoodleBackend:
    def __init__(self, clients: Clients) -> None:
        self.c = clients
        self.settings = clients.settings
        self.store = MoodleStore(clients.storage)

    # --- training -----------------------------------------------------------

    def train(
        self, caller: Caller, uniqueid: str, dirhash: str, data: bytes
    ) -> dict[str, Any]:
        batch = read_labelled(
            data, self.settings.max_csv_rows, self.settings.max_csv_columns
        )
        with self._one_training_at_a_time(caller.tenant, uniqueid, dirhash):
            record, etag = self.store.get(caller.tenant, uniqueid, dirhash)
            return self._train(caller, uniqueid, dirhash, batch, record, etag)

    @contextmanager
    def _one_training_at_a_time(
        self, tenant: str, uniqueid: str, dirhash: str
    ) -> Iterator[None]:
        """Hold the model's training lease; a second training waits for it.

        Each training appends its batch to the samples the one before kept
        and promotes what it trained: run side by side, the later promotion
        would win with a model lacking the other batch. The lease is renewed
        while held and expires within ``LEASE_TTL_S`` if this process dies.
        """
        key = moodle_training(tenant, model_name(uniqueid, dirhash))
        lease = Lease(
            self.c.connection, key, uuid.uuid4().hex, self.settings.lease_ttl_s
        )
        deadline = time.monotonic() + self.settings.moodle_wait_s
        try:
            while not lease.acquire():
                if time.monotonic() > deadline:
                    raise Conflict(
                        f"another training of Moodle model {uniqueid!r} has run for "
                        f"over {self.settings.moodle_wait_s:g} s; send this one again "
                        "later"
                    )
                time.sleep(TRAINING_TURN_POLL_S)
        except redis.RedisError as error:
            raise DependencyUnavailable(
                f"Redis at REDIS_URL is unavailable: {error}"
            ) from error
        try:
            yield
        finally:
            lease.release()

    def _train(
        self,
        caller: Caller,
        uniqueid: str,
        dirhash: str,
        batch: MoodleFile,
        record: MoodleModel | None,
        etag: str | None,
        algorithm: Algorithm | None = None,
    ) -> dict[str, Any]:
        if record is None:
            record = MoodleModel(
                uniqueid=uniqueid,
                dirhash=dirhash,
                model=model_name(uniqueid, dirhash),
                target=batch.target,
                features=batch.names,
                classes=batch.classes,
            )
        X, y = self._all_samples(caller.tenant, record, batch)
        lacking = [value for value in record.classes if value not in set(y.tolist())]
        if lacking:
            return {
                "status": NOT_ENOUGH_DATA,
                "info": [],
                "errors": f"Training data needs samples of every class of "
                f"targetclasses {record.classes}; there is none of "
                f"{lacking} yet",
            }

        schema = self._save_samples(caller.tenant, record, X, y)
        record.dataset_id, record.samples = schema.id, len(y)
        record.batches += 1

        tiny = not self._enough(y)
        algorithm = LINEAR if tiny else algorithm or algorithm_for(len(y))
        job = self._run_job(caller.tenant, record, schema, algorithm, tiny)
        failure = self._failure(job)
        if failure:
            return {"status": GENERAL_ERROR, "info": [failure], "model": record.model}
        notes = self._serve(caller, record, job)
        if tiny:
            notes.insert(0, self._tiny_note(len(y)))
        record.version, record.job_id, record.algorithm = job.version, job.id, algorithm
        self.store.put(caller.tenant, record, etag)
        log.info(
            "moodle: %s v%s trained on %d samples (job %s)",
            record.model,
            job.version,
            len(y),
            job.id,
        )
        return {
            "status": OK,
            "info": [],
            "model": record.model,
            "version": job.version,
            "job_id": job.id,
            "samples": len(y),
            "notes": notes,
        }

    def _all_samples(
        self, tenant: str, record: MoodleModel, batch: MoodleFile
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The samples received before for the model, then the batch's."""
        assert batch.y is not None
        if len(batch.names) != len(record.features):
            raise InvalidInput(
                f"the dataset has {len(batch.names)} features; {record.model} was "
                f"trained with {len(record.features)} (Moodle changed the model's "
                "indicators: delete the model and train it again)"
            )
        if batch.classes != record.classes:
            raise InvalidInput(
                f"targetclasses is {batch.classes}; {record.model} was trained "
                f"with {record.classes}"
            )
        X = batch.X.set_axis(record.features, axis=1)
        if record.dataset_id is None:
            return X, batch.y
        _, frame = self.c.datasets.load(tenant, record.dataset_id)
        before = frame[record.features]
        labels = frame[record.target].to_numpy().astype(np.int64)
        return (
            pd.concat([before, X], ignore_index=True),
            np.concatenate([labels, batch.y]),
        )

    def _save_samples(
        self, tenant: str, record: MoodleModel, X: pd.DataFrame, y: np.ndarray
    ) -> DatasetSchema:
        labels = pd.Series(y.astype("float64"), index=X.index, name=record.target)
        frame = pd.concat([X, labels], axis=1)
        if len(frame) > self.settings.max_csv_rows:
            raise InvalidInput(
                f"{record.model} would hold {len(frame)} samples; a dataset holds at "
                f"most {self.settings.max_csv_rows} (MAX_CSV_ROWS)"
            )
        parsed = ParsedTable(
            frame=frame,
            columns=[
                ColumnInfo(
                    name,
                    NUMERIC,
                    int(frame[name].isna().sum()),
                    int(frame[name].nunique()),
                )
                for name in frame.columns
            ],
            encoding="utf-8",
            delimiter=",",
            decimal=".",
            notes=[
                f"Moodle samples of uniqueid {record.uniqueid}, dirhash "
                f"{record.dirhash}: {len(frame)} from {record.batches + 1} batches"
            ],
        )
        identity = content_id(
            to_stored_csv(frame), {"moodle": f"{record.uniqueid}/{record.dirhash}"}
        )
        return self.c.datasets.save(tenant, identity, parsed, None)

    def _enough(self, y: np.ndarray) -> bool:
        """Whether the samples make a normal job: rows to fit and rows to test."""
        counts = np.unique(y, return_counts=True)[1]
        return (
            len(y) >= self.settings.min_training_rows and counts.min() >= MIN_PER_CLASS
        )

    def _tiny_note(self, samples: int) -> str:
        return (
            f"fitted on all {samples} samples, none held out to evaluate it: a "
            f"normal job needs {self.settings.min_training_rows} or more with "
            f"{MIN_PER_CLASS} of each class (MIN_TRAINING_ROWS)"
        )

    def _run_job(
        self,
        tenant: str,
        record: MoodleModel,
        schema: DatasetSchema,
        algorithm: Algorithm,
        tiny: bool = False,
    ) -> JobRecord:
        """Run a training job on the samples; ``tiny`` fits them all, none held out."""
        # A feature with no value in any sample (an indicator Moodle never could
        # calculate) teaches nothing; the version leaves it out.
        observed = [
            column.name
            for column in schema.columns
            if column.name in record.features and column.missing < schema.rows
        ]
        body = JobCreate(
            model=record.model,
            dataset_id=schema.id,
            target=record.target,
            task="classification",
            features=observed or record.features,
            algorithm=algorithm,
            class_weight=CLASS_WEIGHT,
        )
        protected = get_policy(self.c.storage, tenant).protected_attributes
        request = check_job(
            body,
            schema,
            TINY_MIN_ROWS if tiny else self.settings.min_training_rows,
            protected,
            model_gates(self.c.storage, tenant, record.model),
            min_per_class=TINY_MIN_PER_CLASS if tiny else MIN_PER_CLASS,
        )
        if tiny:
            request = request.model_copy(update={"hold_out": False})
        job = self.c.jobs.create(tenant, request)
        try:
            dispatch(
                self.c.connection,
                tenant,
                job.id,
                JobStatus.QUEUED,
                self.settings.visibility_timeout_s,
            )
        except (OperationalError, redis.RedisError) as error:
            message = (
                f"could not enqueue the training job: Redis is unavailable ({error})"
            )
            self.c.jobs.set_status(tenant, job.id, JobStatus.FAILED, error=message)
            raise DependencyUnavailable(message) from error
        log.info("moodle: job %s queued for %s", job.id, record.model)
        return self._wait_for(tenant, job.id)

    def _wait_for(self, tenant: str, job_id: str) -> JobRecord:
        deadline = time.monotonic() + self.settings.moodle_wait_s
        while True:
            job = self.c.jobs.get(tenant, job_id)
            if job.status.finished or time.monotonic() >= deadline:
                return job
            time.sleep(JOB_POLL_S)

    def _failure(self, job: JobRecord) -> str | None:
        """Why the job gave Moodle no model; None when it registered a version.

        A version whose evaluation failed (a report that took too long, say)
        was fitted all the same, and serves Moodle.
        """
        if job.status.finished and job.version is not None:
            return None
        if job.status is JobStatus.FAILED:
            return f"training job {job.id} of {job.model} failed: {job.error}"
        return (
            f"training job {job.id} of {job.model} is still {job.status.value} "
            f"after {self.settings.moodle_wait_s:g} s (MOODLE_WAIT_S); its "
            "samples will come again with Moodle's next training"
        )

    def _serve(self, caller: Caller, record: MoodleModel, job: JobRecord) -> list[str]:
        """Make the job's version the champion if its evaluation did not."""
        if job.status is JobStatus.DEPLOYED or job.version is None:
            return []
        if job.status is JobStatus.FAILED:
            why = f"its evaluation failed: {job.error}"
        else:
            why = (job.decision or {}).get("reason", "not promoted")
        note = (
            f"{record.model} v{job.version} serves Moodle although the platform's "
            f"evaluation did not promote it ({why})"
        )
        reason = (
            f"Moodle backend: the training on all {record.samples} samples "
            f"received serves Moodle, which expects every training to take "
            f"effect ({why})"
        )
        for _ in range(PROMOTION_ATTEMPTS):
            champion = self.c.registry.champion(caller.tenant, record.model)
            if champion is not None and champion.version == job.version:
                break
            try:
                change_champion(
                    self.c,
                    caller.tenant,
                    record.model,
                    job.version,
                    reason,
                    f"Moodle backend user {caller.user!r}",
                    "promote",
                )
            except Conflict:
                continue
            break
        return [note]

    # --- prediction ---------------------------------------------------------

    def predict(
        self, caller: Caller, uniqueid: str, dirhash: str, data: bytes
    ) -> dict[str, Any]:
        record, _ = self.store.get(caller.tenant, uniqueid, dirhash)
        if record is None or record.version is None:
            return {"status": NO_DATASET, "info": [NOT_TRAINED]}
        batch = read_unlabelled(
            data, self.settings.max_csv_rows, self.settings.max_csv_columns
        )
        if len(batch.names) != len(record.features):
            raise InvalidInput(
                f"the dataset has {len(batch.names)} features; {record.model} was "
                f"trained with {len(record.features)}"
            )
        version = self.c.registry.get_version(
            caller.tenant, record.model, record.version
        )
        X = batch.X.set_axis(record.features, axis=1)[
            [f.name for f in version.features]
        ]
        rows = X.astype(object).where(X.notna(), None).to_numpy().tolist()
        step = self.settings.max_predict_instances
        predictions: list[list[str]] = []
        for start in range(0, len(rows), step):
            answer = run_prediction(
                caller.tenant,
                version,
                rows[start : start + step],
                self.settings.predict_timeout_s,
            )
            ids = (batch.ids or [])[start : start + step]
            predictions.extend(_triples(ids, answer))
        return {"status": OK, "info": [], "predictions": predictions}

    # --- evaluation ---------------------------------------------------------

    def evaluate(
        self,
        caller: Caller,
        uniqueid: str,
        dirhash: str,
        data: bytes,
        min_score: float,
        max_deviation: float,
        iterations: int,
        trained_dirhash: str | None,
    ) -> dict[str, Any]:
        runid = self.store.new_run(caller.tenant, uniqueid, dirhash)
        try:
            result = self._evaluate(
                caller,
                uniqueid,
                data,
                min_score,
                max_deviation,
                iterations,
                trained_dirhash,
            )
        except PlatformError as error:
            result = {
                "status": GENERAL_ERROR,
                "info": [error.message],
                "log": [error.message],
            }
        lines = result.pop("log", [])
        result.update(runid=runid, dir=f"{model_name(uniqueid, dirhash)}/runs/{runid}")
        self.store.save_run(
            caller.tenant,
            uniqueid,
            dirhash,
            runid,
            {"runid": runid, "result": result, "log": lines},
        )
        return result

    def _evaluate(
        self,
        caller: Caller,
        uniqueid: str,
        data: bytes,
        min_score: float,
        max_deviation: float,
        iterations: int,
        trained_dirhash: str | None,
    ) -> dict[str, Any]:
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise InvalidInput(
                f"niterations must be 1 to {MAX_ITERATIONS}; received {iterations}"
            )
        for name, value in (("minscore", min_score), ("maxdeviation", max_deviation)):
            if not 0 <= value <= 1:
                raise InvalidInput(
                    f"{name} must be 0 to 1 (scores and their deviation lie "
                    f"there); received {value:g}"
                )
        batch = read_labelled(
            data, self.settings.max_csv_rows, self.settings.max_csv_columns
        )
        assert batch.y is not None
        lacking = [
            value for value in batch.classes if value not in set(batch.y.tolist())
        ]
        if lacking:
            message = (
                f"The evaluation dataset has no sample of class(es) {lacking} "
                f"of targetclasses {batch.classes}"
            )
            return {"status": GENERAL_ERROR, "info": [message], "log": [message]}
        trained = None
        if trained_dirhash:
            record, _ = self.store.get(caller.tenant, uniqueid, trained_dirhash)
            if record is None or record.version is None:
                return {
                    "status": NO_DATASET,
                    "info": [NOT_TRAINED],
                    "log": [NOT_TRAINED],
                }
            if len(record.features) != len(batch.names):
                raise InvalidInput(
                    f"the evaluation file has {len(batch.names)} features; "
                    f"{record.model} was trained with {len(record.features)}"
                )
            trained = {
                "model": record.model,
                "version": record.version,
                "features": record.features,
            }
        evaluated = MoodleModel(
            uniqueid=uniqueid,
            dirhash="evaluation",
            model=model_name(uniqueid, "evaluation"),
            target=batch.target,
            features=batch.names,
            classes=batch.classes,
        )
        schema = self._save_samples(caller.tenant, evaluated, batch.X, batch.y)
        return self._send_evaluation(
            caller.tenant,
            {
                "tenant": caller.tenant,
                "dataset_id": schema.id,
                "target": batch.target,
                "features": batch.names,
                "classes": batch.classes,
                "min_score": min_score,
                "max_deviation": max_deviation,
                "iterations": iterations,
                "algorithm": algorithm_for(len(batch.y)),
                "trained": trained,
            },
        )

    def _send_evaluation(self, tenant: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        wait_s = self.settings.moodle_wait_s
        try:
            result = app.send_task(MOODLE_EVALUATE_TASK, kwargs=kwargs, expires=wait_s)
        except (OperationalError, redis.RedisError) as error:
            raise DependencyUnavailable(
                f"could not send the evaluation: Redis is unavailable ({error})"
            ) from error
        try:
            answer: dict[str, Any] = result.get(timeout=wait_s, propagate=True)
        except CeleryTimeout as error:
            raise DependencyUnavailable(
                f"no evaluation worker finished Moodle's evaluation within "
                f"{wait_s:g} s (MOODLE_WAIT_S)"
            ) from error
        except Exception as error:  # the task itself died: time limit, lost worker
            raise DependencyUnavailable(
                f"the evaluation failed: {type(error).__name__}: {error}"
            ) from error
        finally:
            result.forget()
        if "error" in answer:
            raise InvalidInput(answer["error"]["message"])
        return answer

    def evaluation_log(
        self, caller: Caller, uniqueid: str, dirhash: str, runid: int
    ) -> bytes:
        """A zip with the run's log and result; never empty."""
        run = self.store.get_run(caller.tenant, uniqueid, dirhash, runid)
        return archive.evaluation_log(runid, run)

    # --- export, import, delete -----------------------------------------------

    def export(self, caller: Caller, uniqueid: str, dirhash: str) -> bytes | None:
        """A zip of the trained model's samples and algorithm; None if untrained."""
        record, _ = self.store.get(caller.tenant, uniqueid, dirhash)
        if record is None or record.version is None or record.dataset_id is None:
            return None
        _, frame = self.c.datasets.load(caller.tenant, record.dataset_id)
        labels = frame[record.target].to_numpy().astype(np.int64)
        samples = write_labelled(
            record.features,
            record.target,
            frame[record.features],
            labels,
            record.classes,
        )
        fields = {
            "model": record.model,
            "version": record.version,
            "algorithm": record.algorithm,
            "classes": record.classes,
            "features": len(record.features),
            "samples": record.samples,
        }
        return archive.pack_export(fields, samples)

    def import_model(
        self, caller: Caller, uniqueid: str, dirhash: str, data: bytes
    ) -> dict[str, Any]:
        """Train (uniqueid, dirhash) afresh from an export, replacing what it held."""
        manifest, samples = archive.unpack_export(data, self.settings.max_upload_bytes)
        try:
            batch = read_labelled(
                samples, self.settings.max_csv_rows, self.settings.max_csv_columns
            )
        except InvalidInput as error:
            raise InvalidInput(
                f"importzip: {archive.SAMPLES}: {error.message}"
            ) from error
        exported = manifest.get("algorithm")
        algorithm = next((known for known in ALGORITHMS if known == exported), None)
        with self._one_training_at_a_time(caller.tenant, uniqueid, dirhash):
            _, etag = self.store.get(caller.tenant, uniqueid, dirhash)
            return self._train(caller, uniqueid, dirhash, batch, None, etag, algorithm)

    def delete(self, caller: Caller, uniqueid: str) -> int:
        removed = self.store.delete_all(caller.tenant, uniqueid)
        log.info(
            "moodle: uniqueid %s of tenant %s deleted (%d objects)",
            uniqueid,
            caller.tenant,
            removed,
        )
        return removed


def _triples(ids: list[str], answer: dict[str, Any]) -> list[list[str]]:
    """Moodle's [sample id, class, score] triples, all three as text."""
    probabilities = answer.get("probabilities")
    triples = []
    for position, (sample, predicted) in enumerate(
        zip(ids, answer["predictions"], strict=True)
    ):
        score = 1.0
        if probabilities is not None:
            score = max(
                (p for p in probabilities[position] if p is not None), default=1.0
            )
        triples.append([sample, _class_text(predicted), f"{score:.6f}"])
    return triples


def _class_text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
