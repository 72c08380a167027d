"""Batch scoring: every row of an uploaded dataset scored by a version, as a CSV.

``POST /v1/models/{model}/batch`` checks the request and queues a batch job
on the queue ``batch``; the job is followed at ``GET /v1/jobs/{id}`` (queued
-> scoring -> done | failed, with ``progress``), and its CSV downloaded from
``GET /v1/jobs/{id}/predictions`` once it is done.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from services.gateway.deps import clients, tenant
from services.gateway.responses import SafeJSONResponse
from services.gateway.routes.jobs import enqueue
from services.gateway.schemas import (
    BatchCreate,
    ErrorBody,
    JobId,
    ModelName,
    error_responses,
)
from shared import keys
from shared.batch import check_scorable, csv_columns
from shared.clients import Clients
from shared.errors import Conflict, NotFound
from shared.jobs import JobKind, JobRecord, JobRequest, JobStatus, Progress
from shared.registry import VersionRecord

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses=error_responses(401, 404, 409, 422, 503),
)
downloads = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=error_responses(401, 404, 422, 503),
)


@router.post("/{model}/batch", status_code=202, response_class=SafeJSONResponse)
def create_batch(
    model: ModelName,
    body: BatchCreate,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> SafeJSONResponse:
    schema = c.datasets.schema(owner, body.dataset_id)
    version = scoring_version(c, owner, model, body.version)
    check_scorable(version, schema)

    request = JobRequest(
        model=model,
        dataset_id=schema.id,
        target=version.target,
        task=version.task,
        features=[feature.name for feature in version.features],
        id_column=schema.id_column,
        algorithm=version.algorithm,
    )
    record = c.jobs.create(
        owner,
        request,
        kind=JobKind.BATCH,
        version=version.version,
        progress=Progress(rows_total=schema.rows),
    )
    enqueue(c, owner, record)
    log.info(
        "gateway: batch job %s queued: %s v%d on dataset %s, %d rows",
        record.id,
        model,
        version.version,
        schema.id,
        schema.rows,
    )

    body_out = {
        "id": record.id,
        "kind": record.kind.value,
        "status": record.status.value,
        "model": model,
        "version": version.version,
        "dataset_id": schema.id,
        "rows": schema.rows,
        "columns": csv_columns(version, schema),
    }
    headers = {"Location": f"/v1/jobs/{record.id}"}
    return SafeJSONResponse(body_out, status_code=202, headers=headers)


def scoring_version(
    c: Clients, owner: str, model: str, number: int | None
) -> VersionRecord:
    """The version asked for, or the champion; 404 or 409 saying why there is none."""
    if number is None:
        champion = c.registry.champion(owner, model)
        if champion is None:
            c.registry.require_model(owner, model)
            raise Conflict(
                f"model {model!r} has no champion yet to score with; wait for its "
                "first job to be deployed, or name a version in 'version'"
            )
        number = champion.version
    try:
        record = c.registry.get_version(owner, model, number)
    except NotFound as error:
        numbers = c.registry.require_model(owner, model)
        raise NotFound(
            f"model {model!r} has no version {number}; its versions are {numbers}"
        ) from error
    if record.deleted_at is not None:
        raise NotFound(
            f"{model} v{number} was deleted at {record.deleted_at} and cannot score; "
            "name another version"
        )
    return record


@downloads.get(
    "/{job_id}/predictions",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The predictions CSV."},
        404: {
            "model": ErrorBody,
            "description": "Unknown job, or a job without predictions (yet): a "
            "training job, a batch job not done or failed; the message says which.",
        },
    },
)
def download_predictions(
    job_id: JobId, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> StreamingResponse:
    record = c.jobs.get(owner, job_id)
    check_downloadable(record)

    size, chunks = c.storage.stream(keys.batch_predictions(owner, job_id))
    name = f"{record.model}-v{record.version}-{job_id}.csv"
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    return StreamingResponse(chunks, media_type="text/csv", headers=headers)


def check_downloadable(record: JobRecord) -> None:
    """NotFound, saying why, unless the job is a batch job that is done."""
    if record.kind is not JobKind.BATCH:
        raise NotFound(
            f"job {record.id} is a {record.kind.value} job; only batch jobs "
            "(POST /v1/models/{model}/batch) have predictions to download"
        )
    if record.status is JobStatus.FAILED:
        raise NotFound(
            f"batch job {record.id} failed, so it has no predictions: {record.error}"
        )
    if record.status is not JobStatus.DONE:
        progress = record.progress or Progress(rows_total=0)
        raise NotFound(
            f"the predictions of batch job {record.id} are not ready: it is "
            f"{record.status.value}, {progress.rows_done} of {progress.rows_total} "
            "rows scored; download them once its status is 'done'"
        )
