"""Bookkeeping around every task, for queue health and metrics.

Connected once per process (gateway and workers): each published message
carries the time it was sent (so the age of a queue's oldest message can be
read), and each queue counts what goes in and comes out. The counts are
summed in the process and written within a second (shared/tally.py), as a
predict task is over in milliseconds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery.signals import before_task_publish, task_postrun, task_prerun

from shared import keys, metrics
from shared.celery_app import PREDICT_TASK, TASK_QUEUES
from shared.clients import get_clients
from shared.queues import count_rate

log = logging.getLogger(__name__)
RUNNING_TTL_S = 3_600
_connected = False


def connect() -> None:
    """Hook the handlers up; idempotent."""
    global _connected
    if _connected:
        return
    before_task_publish.connect(_published, weak=False)
    task_prerun.connect(_started, weak=False)
    task_postrun.connect(_finished, weak=False)
    _connected = True


def _published(
    sender: str | None = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    if headers is not None:
        headers["sent_at"] = time.time()
    queue = routing_key or TASK_QUEUES.get(sender or "", "")
    if not queue:
        return
    connection = get_clients().connection
    count_rate(connection, "in", queue)
    metrics.inc_later(connection, "eduml_tasks_published_total", {"queue": queue})


def _started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    worker = getattr(task.request, "hostname", None) if task else None
    if not worker or not task_id or _momentary(task):
        return
    try:
        get_clients().connection.set(
            keys.running_task(worker, task_id), task.name, ex=RUNNING_TTL_S
        )
    except redis.RedisError as error:
        log.warning("worker %s: running task not recorded: %s", worker, error)


def _finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    if task is None or not task_id:
        return
    queue = TASK_QUEUES.get(task.name, "")
    worker = getattr(task.request, "hostname", None)
    connection = get_clients().connection
    if worker and not _momentary(task):
        try:
            connection.delete(keys.running_task(worker, task_id))
        except redis.RedisError as error:
            log.warning("worker %s: running task not cleared: %s", worker, error)
    if queue:
        count_rate(connection, "out", queue)
    outcome = "failure" if state == "FAILURE" else "success"
    metrics.inc_later(
        connection, "eduml_tasks_done_total", {"queue": queue, "outcome": outcome}
    )


def _momentary(task: Any) -> bool:
    """A predict task lasts milliseconds: recording it as running costs more."""
    return bool(task.name == PREDICT_TASK)
