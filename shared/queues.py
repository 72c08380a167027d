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
from dataclasses import dataclass
from typing import Any

import redis

from shared import keys
from shared.celery_app import QUEUES
from shared.tally import TALLY

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_TTL_S = 20
# kombu's Redis transport keeps delivered, unacknowledged messages here.
UNACKED_HASH = "unacked"


RATE_SLOT_S = 10
RATE_SLOTS_PER_MINUTE = 6
OK, WARNING, CRITICAL = "ok", "warning", "critical"


@dataclass(frozen=True)
class Thresholds:
    """When a queue turns "warning" or "critical" (see README: queue health)."""

    warning_age_s: float = 60.0
    critical_age_s: float = 600.0
    warning_depth: int = 100


def queue_depth(connection: redis.Redis, queue: str) -> int:
    pipe = connection.pipeline()
    for name in keys.queue_lists(queue):
        pipe.llen(name)
    return int(sum(pipe.execute()))


def oldest_age_s(connection: redis.Redis, queue: str, now: float) -> float | None:
    """Age of the oldest waiting message (kombu pushes left, workers pop right)."""
    ages = []
    for name in keys.queue_lists(queue):
        raw = connection.lindex(name, -1)
        sent = _sent_at(raw) if raw else None
        if sent is not None:
            ages.append(now - sent)
    return round(max(ages), 3) if ages else None


def unacked_counts(connection: redis.Redis) -> dict[str, int]:
    """Messages delivered to a worker and not yet acknowledged, per queue."""
    counts: dict[str, int] = {}
    for _, raw in connection.hscan_iter(UNACKED_HASH, count=500):
        try:
            _, _, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts


def rate_per_min(
    connection: redis.Redis, direction: str, queue: str, now: float
) -> int:
    slot = int(now // RATE_SLOT_S)
    names = [
        keys.queue_rate(direction, queue, slot - back)
        for back in range(1, RATE_SLOTS_PER_MINUTE + 1)
    ]
    return sum(int(value) for value in connection.mget(names) if value)


def count_rate(connection: redis.Redis, direction: str, queue: str) -> None:
    """One task in or out of ``queue``, summed in the process and written within
    a second (shared/tally.py)."""
    key = keys.queue_rate(direction, queue, int(time.time() // RATE_SLOT_S))
    TALLY.add(connection, key, 1, RATE_SLOT_S * (RATE_SLOTS_PER_MINUTE + 2))


def live_workers(connection: redis.Redis) -> list[dict[str, Any]]:
    workers = []
    now = time.time()
    for key in connection.scan_iter(match=keys.WORKER_HEARTBEAT_PATTERN, count=100):
        value = connection.get(key)
        if value:
            beat = json.loads(value)
            beat["last_heartbeat_s"] = round(now - beat["at"], 3)
            beat["alive"] = beat["last_heartbeat_s"] < HEARTBEAT_TTL_S
            beat["active"] = sum(
                1
                for _ in connection.scan_iter(
                    match=keys.running_tasks_pattern(beat["name"]), count=100
                )
            )
            workers.append(beat)
    return sorted(workers, key=lambda beat: beat["name"])


def queue_report(
    connection: redis.Redis, limits: Thresholds | None = None
) -> dict[str, Any]:
    limits = limits or Thresholds()
    now = time.time()
    workers = live_workers(connection)
    unacked = unacked_counts(connection)
    queues = []
    for queue in QUEUES:
        consumers = [w["name"] for w in workers if queue in w["queues"] and w["alive"]]
        entry = {
            "name": queue,
            "depth": queue_depth(connection, queue),
            "oldest_age_s": oldest_age_s(connection, queue, now),
            "unacked": unacked.get(queue, 0),
            "consumers": consumers,
            "rate_in_per_min": rate_per_min(connection, "in", queue, now),
            "rate_out_per_min": rate_per_min(connection, "out", queue, now),
        }
        entry["status"], entry["why"] = health(entry, limits)
        queues.append(entry)
    return {"queues": queues, "workers": workers}


def health(queue: dict[str, Any], limits: Thresholds) -> tuple[str, str]:
    """ok, warning or critical, with the reason, from a queue's figures."""
    waiting = queue["depth"] + queue["unacked"]
    age = queue["oldest_age_s"] or 0.0
    if waiting and not queue["consumers"]:
        return CRITICAL, f"{waiting} jobs and no worker consuming"
    if age > limits.critical_age_s:
        return (
            CRITICAL,
            f"oldest message waits {age:.0f} s (> {limits.critical_age_s:g})",
        )
    if age > limits.warning_age_s:
        return WARNING, f"oldest message waits {age:.0f} s (> {limits.warning_age_s:g})"
    if queue["depth"] > limits.warning_depth:
        return WARNING, f"{queue['depth']} messages waiting (> {limits.warning_depth})"
    return OK, "flowing"


def _sent_at(raw: bytes | str) -> float | None:
    try:
        headers = json.loads(raw).get("headers", {})
        return float(headers["sent_at"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


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
