"""Leases: who runs a step of a job, or other one-at-a-time work, kept alive
while it runs.

A worker takes a job's lease before it starts a step and renews it from a
background thread. If the worker dies (``kill -9``, out of memory), the
lease expires within its time to live and the reaper gives the job to
another worker. A second delivery of the same task finds the lease taken
and leaves the job alone.
"""

from __future__ import annotations

import logging
import threading

import redis

from shared import keys

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 4

# Renew the lease if it is ours or, after a Redis restart, nobody's.
_RENEW = """
local current = redis.call('get', KEYS[1])
if current == false or current == ARGV[1] then
    return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return false
"""

# Delete the lease only if it is still ours.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(
        self, connection: redis.Redis, key: str, holder: str, ttl_s: int
    ) -> None:
        self.connection = connection
        self.ttl_s = ttl_s
        self.key = key
        self.holder = holder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        taken = self.connection.set(self.key, self.holder, nx=True, ex=self.ttl_s)
        if taken:
            self._thread = threading.Thread(
                target=self._renew, name="lease", daemon=True
            )
            self._thread.start()
        return bool(taken)

    def release(self) -> None:
        self._stop.set()
        try:
            self.connection.eval(_RELEASE, 1, self.key, self.holder)
        except redis.RedisError as error:
            log.warning(
                "lease %s: not released (%s); it expires on its own", self.key, error
            )

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / RENEWALS_PER_TTL):
            try:
                self.connection.eval(_RENEW, 1, self.key, self.holder, self.ttl_s)
            except redis.RedisError as error:
                log.warning("lease %s: renewal failed: %s", self.key, error)


def holder(connection: redis.Redis, tenant: str, job_id: str, step: str) -> str | None:
    value = connection.get(keys.job_lease(tenant, job_id, step))
    return keys.text(value) if value else None
