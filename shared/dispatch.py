"""Sending a job's next step to its queue, with a marker saying it is on its way.

The marker lets the reaper tell a job that waits in a queue from a job
whose message was lost (Redis restarted) or whose worker died.
"""

from __future__ import annotations

import logging

import redis
from kombu.exceptions import OperationalError

from shared import keys
from shared.celery_app import BATCH_TASK, EVALUATE_TASK, TRAIN_TASK, app
from shared.jobs import JobKind, JobStatus

log = logging.getLogger(__name__)

STEPS = (JobStatus.TRAINING, JobStatus.EVALUATING, JobStatus.SCORING)
TASK_FOR_STATUS = {
    (JobKind.TRAINING, JobStatus.QUEUED): TRAIN_TASK,
    (JobKind.TRAINING, JobStatus.TRAINING): TRAIN_TASK,
    (JobKind.TRAINING, JobStatus.EVALUATING): EVALUATE_TASK,
    (JobKind.BATCH, JobStatus.QUEUED): BATCH_TASK,
    (JobKind.BATCH, JobStatus.SCORING): BATCH_TASK,
}


def dispatch(
    connection: redis.Redis,
    tenant: str,
    job_id: str,
    status: JobStatus,
    ttl_s: int,
    kind: JobKind = JobKind.TRAINING,
) -> None:
    """Send the task that moves a job of ``kind`` on from ``status``."""
    mark(connection, tenant, job_id, status, ttl_s)
    app.send_task(
        TASK_FOR_STATUS[(kind, status)], kwargs={"tenant": tenant, "job_id": job_id}
    )


def hand_on(
    connection: redis.Redis, tenant: str, job_id: str, status: JobStatus, ttl_s: int
) -> None:
    """Dispatch a training job's next step from inside a worker; if the broker
    is away, the reaper resends."""
    try:
        dispatch(connection, tenant, job_id, status, ttl_s)
    except (OperationalError, redis.RedisError) as error:
        log.warning(
            "job %s: next step not sent (%s); left to the reaper", job_id, error
        )


def mark(
    connection: redis.Redis, tenant: str, job_id: str, status: JobStatus, ttl_s: int
) -> None:
    """Note that a task for the job is on its way (also before a Celery retry)."""
    try:
        connection.set(keys.job_dispatched(tenant, job_id), status.value, ex=ttl_s)
    except redis.RedisError as error:
        log.warning(
            "job %s: dispatch marker not set (%s); the reaper may resend", job_id, error
        )


def taken(connection: redis.Redis, tenant: str, job_id: str) -> None:
    """A worker has the job: it no longer waits in a queue."""
    try:
        connection.delete(keys.job_dispatched(tenant, job_id))
    except redis.RedisError as error:
        log.warning(
            "job %s: dispatch marker kept (%s); it expires on its own", job_id, error
        )


def in_flight(connection: redis.Redis, tenant: str, job_id: str) -> bool:
    pipe = connection.pipeline()
    pipe.exists(keys.job_dispatched(tenant, job_id))
    for step in STEPS:
        pipe.exists(keys.job_lease(tenant, job_id, step.value))
    return any(pipe.execute())
