"""Counts on the prediction path, added up in the process and written once a second.

A prediction passes through the gateway and a serving worker in a few
milliseconds; writing its queue rates and metrics to Redis one by one would
cost more than predicting. Those increments are summed here instead, per
Redis key and hash field, and a daemon thread writes the sums in one
pipeline every ``FLUSH_INTERVAL_S``. Readers (``/metrics``, ``/v1/queues``)
see them at most that much later. What a process has not yet written when it
ends normally is written at exit; a process killed outright loses at most
one interval of counts, never a job or a prediction.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import defaultdict

import redis

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0

# (key, hash field or "" for a plain counter) -> amount; one table per client
Sums = dict[tuple[str, str], float]


class Tally:
    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._sums: dict[int, Sums] = defaultdict(lambda: defaultdict(float))
        self._clients: dict[int, redis.Redis] = {}
        self._ttls: dict[str, int] = {}
        self._pid: int | None = None

    def add(
        self,
        connection: redis.Redis,
        key: str,
        amount: float,
        ttl_s: int,
        field: str = "",
    ) -> None:
        """Add ``amount`` to a counter key, or to a field of a hash key."""
        with self._lock:
            self._start_in_this_process()
            self._clients[id(connection)] = connection
            self._sums[id(connection)][(key, field)] += amount
            self._ttls[key] = ttl_s

    def flush(self) -> None:
        """Write what has been added since the last flush."""
        with self._lock:
            sums, self._sums = self._sums, defaultdict(lambda: defaultdict(float))
            ttls, self._ttls = self._ttls, {}
            clients = dict(self._clients)
        for client_id, table in sums.items():
            if table:
                _write(clients[client_id], table, ttls)

    def _start_in_this_process(self) -> None:
        # A forked child inherits the tables but not the thread.
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._sums = defaultdict(lambda: defaultdict(float))
        self._ttls = {}
        threading.Thread(target=self._run, name="tally-flush", daemon=True).start()

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval_s):
            self.flush()


def _write(connection: redis.Redis, table: Sums, ttls: dict[str, int]) -> None:
    pipe = connection.pipeline(transaction=False)
    for (key, field), amount in table.items():
        if field:
            pipe.hincrbyfloat(key, field, amount)
        elif float(amount).is_integer():
            pipe.incrby(key, int(amount))
        else:
            pipe.incrbyfloat(key, amount)
    for key in {key for key, _ in table}:
        pipe.expire(key, ttls.get(key, 3600))
    try:
        pipe.execute()
    except redis.RedisError as error:
        log.warning("tally: %d counts not written: %s", len(table), error)


TALLY = Tally()
atexit.register(TALLY.flush)
