"""Job records: one request and its lifecycle, kept in S3.

A job is of one of two kinds: a training job goes queued -> training ->
evaluating -> deployed | rejected | failed; a batch job, which scores every
row of a dataset with one version, goes queued -> scoring -> done | failed.

A record is rewritten only with a conditional write on the ETag it was read
with, so two writers never lose each other's changes. Job ids sort by
creation time, so the newest jobs are the last keys of a listing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.errors import Conflict, NotFound
from shared.storage import Storage

log = logging.getLogger(__name__)

UPDATE_ATTEMPTS = 10


class JobKind(str, Enum):
    TRAINING = "training"
    BATCH = "batch"


class JobStatus(str, Enum):
    QUEUED = "queued"
    TRAINING = "training"
    EVALUATING = "evaluating"
    SCORING = "scoring"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = {JobStatus.DEPLOYED, JobStatus.REJECTED, JobStatus.DONE, JobStatus.FAILED}


class TuningBudget(BaseModel):
    """Hyper-parameter search: at most ``trials`` settings, at most ``seconds``."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(default=20, ge=1, le=500)
    seconds: float = Field(default=120.0, gt=0, le=3_600)


# Group metrics a gap gate may read, per task.
CLASSIFICATION_GAP_METRICS = (
    "recall",
    "false_negative_rate",
    "false_positive_rate",
    "selection_rate",
    "accuracy",
)
REGRESSION_GAP_METRICS = ("mae", "mean_error")


class Gates(BaseModel):
    """What a candidate must show before it may replace the champion."""

    model_config = ConfigDict(extra="forbid")

    must_beat_baseline: bool = True
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description="Primary-metric gain over the champion needed to promote.",
    )
    significant: bool = Field(
        default=False,
        description="Also require the bootstrap interval of the gain to exclude zero.",
    )
    max_group_gap: float | None = Field(
        default=None,
        ge=0.0,
        description="Largest allowed best-minus-worst gap of gap_metric between "
        "groups.",
    )
    gap_metric: str = Field(
        default="recall",
        description="Group metric the gap gate reads: recall, false_negative_rate, "
        "false_positive_rate, selection_rate, accuracy (classifiers); mae, mean_error.",
    )


class JobRequest(BaseModel):
    """What the LMS asked for, after the gateway checked it against the dataset."""

    model: str
    dataset_id: str
    target: str
    task: str
    features: list[str]
    id_column: str | None = None
    algorithm: str = "auto"
    tuning: TuningBudget | None = None
    class_weight: str | None = None
    group_split_column: str | None = None
    group_columns: list[str] = Field(default_factory=list)
    min_group_size: int = 30
    capacity: float = 0.1
    gates: Gates = Field(default_factory=Gates)
    # False fits every labelled row and holds none out: the version is
    # registered without evaluation. Only the Moodle backend asks for it, for
    # sets too small to split; POST /v1/jobs cannot.
    hold_out: bool = True


class Progress(BaseModel):
    """How many of a batch job's rows have been scored."""

    rows_done: int = 0
    rows_total: int


class JobRecord(BaseModel):
    """A job as stored. A batch job keeps what it scores in ``request`` (the
    version's target, task and features, the dataset's id column), the
    version it scores with in ``version``, and its ``progress``."""

    id: str
    tenant: str
    kind: JobKind = JobKind.TRAINING
    status: JobStatus = JobStatus.QUEUED
    request: JobRequest
    version: int | None = None
    metrics: dict[str, float | None] | None = None
    decision: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    started: dict[str, int] = Field(default_factory=dict)
    costs: dict[str, dict[str, float]] = Field(default_factory=dict)
    worker: str | None = None
    workers: dict[str, str] = Field(default_factory=dict)
    timestamps: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    progress: Progress | None = None

    @property
    def model(self) -> str:
        return self.request.model

    def public(self) -> dict[str, Any]:
        """The record as the status API shows it."""
        shown: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "model": self.request.model,
            "dataset_id": self.request.dataset_id,
            "target": self.request.target,
            "task": self.request.task,
            "algorithm": self.request.algorithm,
            "features": self.request.features,
            "version": self.version,
            "metrics": self.metrics,
            "decision": self.decision,
            "error": self.error,
            "attempts": self.attempts,
            "worker": self.worker,
            "workers": self.workers,
            "costs": self.costs,
            "timestamps": self.timestamps,
            "notes": self.notes,
        }
        if self.progress is not None:
            shown["progress"] = self.progress.model_dump()
        return shown


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    """A job id that sorts by creation time: milliseconds, then randomness."""
    return f"{int(time.time() * 1000):013x}{os.urandom(5).hex()}"


class JobStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def create(
        self,
        tenant: str,
        request: JobRequest,
        kind: JobKind = JobKind.TRAINING,
        version: int | None = None,
        progress: Progress | None = None,
        notes: list[str] | None = None,
    ) -> JobRecord:
        record = JobRecord(
            id=new_job_id(),
            tenant=tenant,
            kind=kind,
            request=request,
            version=version,
            progress=progress,
            notes=list(notes or []),
        )
        record.timestamps[JobStatus.QUEUED.value] = now_iso()
        key = keys.job_record(tenant, record.id)
        self.storage.put_json(key, record.model_dump(mode="json"), if_none_match=True)
        self.storage.put_bytes(keys.active_marker(tenant, record.id), b"")
        return record

    def get(self, tenant: str, job_id: str) -> JobRecord:
        return self._read(tenant, job_id)[0]

    def update(
        self, tenant: str, job_id: str, change: Callable[[JobRecord], None]
    ) -> JobRecord:
        """Apply ``change`` to the stored record, retrying lost races."""
        for _ in range(UPDATE_ATTEMPTS):
            record, etag = self._read(tenant, job_id)
            change(record)
            key = keys.job_record(tenant, job_id)
            try:
                self.storage.put_json(
                    key, record.model_dump(mode="json"), if_match=etag
                )
            except Conflict:
                continue
            return record
        raise Conflict(
            f"job {job_id}: record changed {UPDATE_ATTEMPTS} times while being updated"
        )

    def set_status(
        self, tenant: str, job_id: str, status: JobStatus, **fields: Any
    ) -> JobRecord:
        def change(record: JobRecord) -> None:
            record.status = status
            record.timestamps[status.value] = now_iso()
            for name, value in fields.items():
                setattr(record, name, value)

        record = self.update(tenant, job_id, change)
        if status.finished:
            self.storage.delete(keys.active_marker(tenant, job_id))
        return record

    def active(self) -> list[tuple[str, str]]:
        """(tenant, job id) of every job not yet finished, across tenants."""
        found = []
        for folder in self.storage.list_folders(keys.TENANTS_PREFIX):
            tenant = folder.rstrip("/").rsplit("/", 1)[-1]
            for key in self.storage.list_keys(keys.active_prefix(tenant)):
                found.append((tenant, key.rsplit("/", 1)[-1]))
        return found

    def recent(self, tenant: str, limit: int) -> list[JobRecord]:
        names = list(self.storage.list_keys(keys.jobs_prefix(tenant)))
        newest = [name for name in reversed(names) if name.endswith(".json")][:limit]
        records = []
        for name in newest:
            job_id = name.rsplit("/", 1)[-1].removesuffix(".json")
            try:
                records.append(self.get(tenant, job_id))
            except NotFound:
                continue
        return records

    def _read(self, tenant: str, job_id: str) -> tuple[JobRecord, str]:
        try:
            value, etag = self.storage.get_json(keys.job_record(tenant, job_id))
        except NotFound as error:
            raise NotFound(f"job {job_id!r} not found") from error
        return JobRecord.model_validate(value), etag
