"""What the training and evaluation tasks do alike around a step of a job:
take its lease, retry while a dependency is down, record a failure."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from shared import keys, metrics
from shared.clients import Clients, get_clients
from shared.dispatch import mark, taken
from shared.errors import DependencyUnavailable, PlatformError
from shared.jobs import JobRecord, JobStatus, now_iso
from shared.leases import Lease

log = logging.getLogger(__name__)


StepBody = Callable[[Clients, JobRecord], None]


def run_step(
    task: Task,
    tenant: str,
    job_id: str,
    stage: JobStatus,
    ready: Callable[[JobRecord], bool],
    body: StepBody,
    time_limit_s: int,
) -> None:
    """A task's table of contents: read the job, take its lease, run the step.

    Whatever happens in ``body``, the worker survives it: a dependency that
    is down is retried with backoff, anything else fails the job with the
    reason, and the lease is released.
    """
    clients = get_clients()
    try:
        record = clients.jobs.get(tenant, job_id)
    except DependencyUnavailable as error:
        retry_or_fail(task, clients, tenant, job_id, stage, error)
        return
    if not ready(record):
        log.info(
            "job %s: %s, nothing to do for %s", job_id, record.status.value, stage.value
        )
        return
    lease = claim(clients, tenant, job_id, stage, holder_name(task))
    if lease is None:
        return
    try:
        started = begin_step(
            clients, tenant, job_id, stage, lease.holder, task.request.retries > 0
        )
        if started is not None:
            time.sleep(clients.settings.step_delay_s)
            body(clients, started)
    except DependencyUnavailable as error:
        retry_or_fail(task, clients, tenant, job_id, stage, error)
    except SoftTimeLimitExceeded:
        fail(clients, tenant, job_id, f"{stage.value} exceeded {time_limit_s} s")
    except PlatformError as error:
        fail(clients, tenant, job_id, error.message)
    except Exception as error:  # a worker must outlive any one job
        log.exception("job %s: unexpected failure during %s", job_id, stage.value)
        fail(
            clients,
            tenant,
            job_id,
            f"{stage.value} failed: {type(error).__name__}: {error}",
        )
    finally:
        lease.release()


def holder_name(task: Task) -> str:
    """The worker and pool process running ``task``, as recorded on the job."""
    return f"{task.request.hostname}:{os.getpid()}"


def claim(
    clients: Clients, tenant: str, job_id: str, stage: JobStatus, holder: str
) -> Lease | None:
    """The lease of the job's step, or None when another worker is already on it.

    Either way this delivery has left the queue, so the dispatch marker goes:
    were the other worker to die, the reaper must not wait for a task that
    is no longer queued.
    """
    lease = Lease(
        clients.connection,
        keys.job_lease(tenant, job_id, stage.value),
        holder,
        clients.settings.lease_ttl_s,
    )
    acquired = lease.acquire()
    taken(clients.connection, tenant, job_id)
    if not acquired:
        log.info(
            "job %s: another worker holds its %s; this delivery is a duplicate",
            job_id,
            stage.value,
        )
        return None
    return lease


# A job whose worker is lost this many times is failed for good, not looped.
MAX_ATTEMPTS = 2


def begin_step(
    clients: Clients,
    tenant: str,
    job_id: str,
    stage: JobStatus,
    holder: str,
    retried: bool,
) -> JobRecord | None:
    """Record that ``holder`` starts ``stage`` of the job; None if it must not.

    A step that had started before and never finished lost its worker
    (killed, out of memory): that counts as a new attempt, and past
    ``MAX_ATTEMPTS`` the job fails for good. A Celery retry (a dependency
    was down) is not a lost worker and counts nothing.
    """
    ceiling = clients.settings.worker_max_memory_mib

    def change(job: JobRecord) -> None:
        lost = job.started.get(stage.value, 0) > 0 and not retried
        job.attempts = max(job.attempts, 1)
        if lost and job.attempts >= MAX_ATTEMPTS:
            job.status = JobStatus.FAILED
            job.timestamps[JobStatus.FAILED.value] = now_iso()
            job.error = (
                f"worker lost during {stage.value} on attempt {job.attempts} (killed, "
                f"or out of memory above {ceiling} MiB); not retried again"
            )
            return
        if lost:
            job.attempts += 1
            job.notes.append(
                f"attempt {job.attempts}: previous worker ({job.worker}) "
                f"lost during {stage.value}"
            )
        job.started[stage.value] = job.started.get(stage.value, 0) + 1
        job.worker = holder
        job.workers[stage.value] = holder
        job.status = stage
        job.timestamps.setdefault(stage.value, now_iso())

    record = clients.jobs.update(tenant, job_id, change)
    if record.status is JobStatus.FAILED:
        clients.jobs.set_status(tenant, job_id, JobStatus.FAILED)
        log.warning("job %s: failed for good: %s", job_id, record.error)
        return None
    log.info(
        "job %s: %s, attempt %d, on %s", job_id, stage.value, record.attempts, holder
    )
    return record


def retry_or_fail(
    task: Task,
    clients: Clients,
    tenant: str,
    job_id: str,
    stage: JobStatus,
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
        log.warning(
            "job %s: %s; retry %d in %.0f s", job_id, error.message, retries + 1, delay
        )
        mark(clients.connection, tenant, job_id, stage, settings.visibility_timeout_s)
        raise task.retry(countdown=delay, max_retries=settings.dependency_retries)
    taken(clients.connection, tenant, job_id)
    fail(clients, tenant, job_id, f"{error.message} (gave up after {retries} retries)")


def fail(clients: Clients, tenant: str, job_id: str, message: str) -> None:
    """Mark the job failed; if even that cannot be stored, the reaper finds it later."""
    log.warning("job %s: failed: %s", job_id, message)
    metrics.inc(clients.connection, "eduml_jobs_finished_total", {"status": "failed"})
    try:
        clients.jobs.set_status(tenant, job_id, JobStatus.FAILED, error=message)
    except PlatformError as error:
        log.error("job %s: could not record its failure: %s", job_id, error.message)
