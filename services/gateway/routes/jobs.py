"""Jobs: enqueue a training job, follow any job's status, list recent ones.

Batch jobs are created by ``POST /v1/models/{model}/batch`` (routes/batch.py)
and followed here like training jobs.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import APIRouter, Depends, Query
from kombu.exceptions import OperationalError

from services.gateway.deps import clients, tenant
from services.gateway.job_checks import check_job, left_out_as_ids
from services.gateway.responses import SafeJSONResponse
from services.gateway.schemas import JobCreate, JobId, error_responses
from shared.clients import Clients
from shared.dispatch import dispatch
from shared.errors import DependencyUnavailable
from shared.jobs import JobRecord, JobStatus
from shared.policy import get_policy, keep_model_gates, model_gates

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=error_responses(401, 404, 422, 503),
)


@router.post("", status_code=202, response_class=SafeJSONResponse)
def create_job(
    body: JobCreate, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> SafeJSONResponse:
    schema = c.datasets.schema(owner, body.dataset_id)
    protected = get_policy(c.storage, owner).protected_attributes
    stored_gates = model_gates(c.storage, owner, body.model)
    request = check_job(
        body, schema, c.settings.min_training_rows, protected, stored_gates
    )

    if body.gates is not None:
        keep_model_gates(c.storage, owner, body.model, body.gates)
    notes = left_out_as_ids(request, schema) if body.features is None else []
    record = c.jobs.create(owner, request, notes=notes)
    enqueue(c, owner, record)
    log.info("gateway: job %s queued for model %r", record.id, request.model)

    body_out = {
        "id": record.id,
        "status": record.status.value,
        "model": request.model,
        **({"notes": notes} if notes else {}),
    }
    headers = {"Location": f"/v1/jobs/{record.id}"}
    return SafeJSONResponse(body_out, status_code=202, headers=headers)


def enqueue(c: Clients, owner: str, record: JobRecord) -> None:
    """Send a new job's first task; without Redis the job fails, with a 503."""
    try:
        dispatch(
            c.connection,
            owner,
            record.id,
            JobStatus.QUEUED,
            c.settings.visibility_timeout_s,
            record.kind,
        )
    except (OperationalError, redis.RedisError) as error:
        message = (
            f"could not enqueue the job: Redis is unavailable at REDIS_URL ({error})"
        )
        c.jobs.set_status(owner, record.id, JobStatus.FAILED, error=message)
        raise DependencyUnavailable(message) from error


@router.get("", response_class=SafeJSONResponse)
def list_jobs(
    limit: int = Query(20, ge=1, le=200),
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    records = c.jobs.recent(owner, min(limit, c.settings.jobs_list_limit))
    return {"jobs": [record.public() for record in records]}


@router.get("/{job_id}", response_class=SafeJSONResponse)
def get_job(
    job_id: JobId, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    return c.jobs.get(owner, job_id).public()
