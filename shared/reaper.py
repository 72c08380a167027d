"""The reaper: finds unfinished jobs that nothing is working on, and revives them.

A job is unfinished while its active marker exists in S3. It is in hand
while a task for it waits in a queue (dispatch marker) or a worker holds
its lease. A job seen in neither state for ``ORPHAN_GRACE_S`` has lost its
worker (killed, out of memory) or its message (Redis restarted): its step is
sent again. The worker that takes it counts the attempt, and fails the job
for good once its worker was lost twice (see job_steps.begin_step).
The worst delay from a worker's death to the job's next attempt is about
``LEASE_TTL_S + ORPHAN_GRACE_S + REAPER_INTERVAL_S`` (settings): under a
minute with the defaults.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from shared import keys
from shared.clients import Clients
from shared.dispatch import dispatch, in_flight
from shared.errors import NotFound, PlatformError
from shared.jobs import JobRecord, JobStatus

log = logging.getLogger(__name__)

ORPHAN_MEMORY_S = 600


class Reaper:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="reaper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> list[str]:
        """One pass over the unfinished jobs; what it did, for logs and tests."""
        done = []
        for tenant, job_id in self.clients.jobs.active():
            action = self._examine(tenant, job_id)
            if action:
                done.append(f"{job_id}: {action}")
        return done

    def _examine(self, tenant: str, job_id: str) -> str | None:
        connection = self.clients.connection
        try:
            record = self.clients.jobs.get(tenant, job_id)
        except NotFound:
            self.clients.storage.delete(keys.active_marker(tenant, job_id))
            return "marker without a record removed"
        if record.status.finished:
            self.clients.storage.delete(keys.active_marker(tenant, job_id))
            return None
        if in_flight(connection, tenant, job_id):
            connection.delete(keys.job_orphaned(tenant, job_id))
            return None
        connection.set(
            keys.job_orphaned(tenant, job_id), time.time(), nx=True, ex=ORPHAN_MEMORY_S
        )
        since = float(connection.get(keys.job_orphaned(tenant, job_id)) or time.time())
        if time.time() - since < self.clients.settings.orphan_grace_s:
            return None
        connection.delete(keys.job_orphaned(tenant, job_id))
        return self.revive(record)

    def revive(self, record: JobRecord) -> str:
        """Send the job's step again; the worker that takes it counts the attempt."""
        if record.status is JobStatus.QUEUED:
            self._note(
                record, "re-queued: its message was lost before a worker took it"
            )
        else:
            self._note(
                record,
                f"re-sent: no worker held it during {record.status.value} "
                f"(last worker {record.worker})",
            )
        self._send(record, record.status)
        log.warning("reaper: job %s re-sent (%s)", record.id, record.status.value)
        return f"re-sent ({record.status.value})"

    def _note(self, record: JobRecord, note: str) -> None:
        self.clients.jobs.update(
            record.tenant, record.id, lambda job: job.notes.append(note)
        )

    def _send(self, record: JobRecord, status: JobStatus) -> None:
        dispatch(
            self.clients.connection,
            record.tenant,
            record.id,
            status,
            self.clients.settings.visibility_timeout_s,
            record.kind,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.clients.settings.reaper_interval_s):
            try:
                if self._take_turn():
                    for action in self.sweep():
                        log.info("reaper: %s", action)
            except (PlatformError, redis.RedisError) as error:
                log.warning("reaper: sweep skipped: %s", error)

    def _take_turn(self) -> bool:
        """One reaper sweeps per interval, whichever worker gets there first."""
        lock_s = max(1, int(self.clients.settings.reaper_interval_s) - 1)
        return bool(
            self.clients.connection.set(keys.REAPER_LOCK, "1", nx=True, ex=lock_s)
        )
