"""Queue health as Redis sees it, and the heartbeats workers leave there.

A worker's main process writes a heartbeat key with a short expiry; a
worker whose key has expired is gone. Queue depth counts every priority
sub-list kombu keeps for a queue.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis

from shared import keys
from shared.celery_app import QUEUES

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_TTL_S = 20


def queue_depth(connection: redis.Redis, queue: str) -> int:
    pipe = connection.pipeline()
    for name in keys.queue_lists(queue):
        pipe.llen(name)
    return int(sum(pipe.execute()))


def live_workers(connection: redis.Redis) -> list[dict[str, Any]]:
    workers = []
    for key in connection.scan_iter(match=keys.WORKER_HEARTBEAT_PATTERN, count=100):
        value = connection.get(key)
        if value:
            beat = json.loads(value)
            beat["last_heartbeat_s"] = round(time.time() - beat["at"], 3)
            workers.append(beat)
    return sorted(workers, key=lambda beat: beat["name"])


def queue_report(connection: redis.Redis) -> dict[str, Any]:
    workers = live_workers(connection)
    queues = []
    for queue in QUEUES:
        consumers = [w["name"] for w in workers if queue in w["queues"]]
        queues.append(
            {"name": queue, "depth": queue_depth(connection, queue), "consumers": consumers}
        )
    return {"queues": queues, "workers": workers}


class Heartbeat:
    """Writes a worker's heartbeat key until stopped; runs in a daemon thread."""

    def __init__(self, connection: redis.Redis, name: str, queues: list[str]) -> None:
        self.connection = connection
        self.name = name
        self.queues = queues
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.connection.delete(keys.worker_heartbeat(self.name))
        except redis.RedisError:
            log.warning("worker %s: could not remove its heartbeat", self.name)

    def beat(self) -> None:
        value = {
            "name": self.name,
            "queues": self.queues,
            "pid": os.getpid(),
            "started": self.started,
            "at": time.time(),
        }
        self.connection.set(
            keys.worker_heartbeat(self.name), json.dumps(value), ex=HEARTBEAT_TTL_S
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as error:
                log.warning("worker %s: heartbeat failed: %s", self.name, error)
            self._stop.wait(HEARTBEAT_INTERVAL_S)
