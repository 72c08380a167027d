"""What the training and evaluation tasks do alike around a step of a job:
take its lease, retry while a dependency is down, record a failure."""

from __future__ import annotations

import logging
import os

from celery import Task

from shared.clients import Clients
from shared.dispatch import mark, taken
from shared.errors import DependencyUnavailable, PlatformError
from shared.jobs import JobStatus
from shared.leases import Lease

log = logging.getLogger(__name__)


def holder_name(task: Task) -> str:
    """The worker and pool process running ``task``, as recorded on the job."""
    return f"{task.request.hostname}:{os.getpid()}"


def claim(clients: Clients, tenant: str, job_id: str, holder: str) -> Lease | None:
    """The job's lease, or None when another worker is already on it."""
    lease = Lease(clients.connection, tenant, job_id, holder, clients.settings.lease_ttl_s)
    if not lease.acquire():
        log.info("job %s: another worker holds it; this delivery is a duplicate", job_id)
        return None
    taken(clients.connection, tenant, job_id)
    return lease


def retry_or_fail(
    task: Task, clients: Clients, tenant: str, job_id: str, stage: JobStatus,
    error: DependencyUnavailable,
) -> None:
    """Retry the step with exponential backoff, then fail the job with the reason.

    When even the failure cannot be stored, the job is left to the reaper,
    which finds it once storage is back.
    """
    settings = clients.settings
    retries = task.request.retries
    if retries < settings.dependency_retries:
        delay = settings.dependency_backoff_s * 2**retries
        log.warning("job %s: %s; retry %d in %.0f s", job_id, error.message, retries + 1,
                    delay)
        mark(clients.connection, tenant, job_id, stage, settings.visibility_timeout_s)
        raise task.retry(countdown=delay, max_retries=settings.dependency_retries)
    taken(clients.connection, tenant, job_id)
    fail(clients, tenant, job_id, f"{error.message} (gave up after {retries} retries)")


def fail(clients: Clients, tenant: str, job_id: str, message: str) -> None:
    """Mark the job failed; if even that cannot be stored, the reaper finds it later."""
    log.warning("job %s: failed: %s", job_id, message)
    try:
        clients.jobs.set_status(tenant, job_id, JobStatus.FAILED, error=message)
    except PlatformError as error:
        log.error("job %s: could not record its failure: %s", job_id, error.message)
