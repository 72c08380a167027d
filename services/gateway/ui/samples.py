"""Queue depths over time, for the dashboard's chart, kept in Redis.

A sample is the depth of every queue at one moment. Samples live in one
sorted set (``keys.QUEUE_DEPTH_SAMPLES``) scored by their time, trimmed to
the last ``WINDOW_S`` and expiring with it: every gateway reads the same
history, and losing Redis loses only the chart. They are taken by a
sampler thread in each gateway every ``INTERVAL_S``, and whenever
``/ui/queues`` is rendered. A sample younger than a minimum gap stops
another one, so several gateways together still sample about once per
interval.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared import keys
from shared.queues import queue_report

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
WINDOW_S = 3600
SAMPLER_GAP_S = INTERVAL_S * 0.9  # the sampler skips a turn another gateway took
PAGE_GAP_S = 1.0  # a page rendered within this of the last sample adds none


@dataclass(frozen=True)
class Sample:
    at: float
    depths: dict[str, int]


def record(
    connection: redis.Redis,
    report: dict[str, Any],
    min_gap_s: float,
    now: float | None = None,
) -> bool:
    """Keep the depths of ``report`` unless a sample is younger than ``min_gap_s``."""
    now = time.time() if now is None else now
    newest = connection.zrevrange(keys.QUEUE_DEPTH_SAMPLES, 0, 0, withscores=True)
    if newest and now - float(newest[0][1]) < min_gap_s:
        return False
    depths = {queue["name"]: int(queue["depth"]) for queue in report["queues"]}
    member = json.dumps({"at": round(now, 3), "depths": depths}, sort_keys=True)
    pipe = connection.pipeline()
    pipe.zadd(keys.QUEUE_DEPTH_SAMPLES, {member: now})
    pipe.zremrangebyscore(keys.QUEUE_DEPTH_SAMPLES, "-inf", now - WINDOW_S)
    pipe.expire(keys.QUEUE_DEPTH_SAMPLES, WINDOW_S)
    pipe.execute()
    return True


def history(
    connection: redis.Redis, since_s: float = WINDOW_S, now: float | None = None
) -> list[Sample]:
    """The samples of the last ``since_s`` seconds, oldest first."""
    now = time.time() if now is None else now
    found = connection.zrangebyscore(keys.QUEUE_DEPTH_SAMPLES, now - since_s, "+inf")
    samples = []
    for member in cast(list[bytes], found):
        value = json.loads(member)
        samples.append(Sample(float(value["at"]), dict(value["depths"])))
    return samples


class Sampler:
    """Samples queue depths every ``interval_s`` in a daemon thread until stopped."""

    def __init__(self, connection: redis.Redis, interval_s: float = INTERVAL_S) -> None:
        self.connection = connection
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="queue-sampler", daemon=True
        )
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 1)

    def sample(self) -> None:
        try:
            record(self.connection, queue_report(self.connection), SAMPLER_GAP_S)
        except redis.RedisError as error:
            if not self._failing:
                log.warning("gateway: queue sampler: Redis is unavailable: %s", error)
            self._failing = True
            return
        if self._failing:
            log.info("gateway: queue sampler: Redis answers again")
        self._failing = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)
