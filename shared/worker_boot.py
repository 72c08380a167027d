"""What every worker does when it starts and stops, whatever its queue."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import (
    celeryd_after_setup,
    setup_logging,
    worker_ready,
    worker_shutdown,
)

from shared import task_signals
from shared.celery_app import WORKER_QUEUES
from shared.clients import get_clients
from shared.logs import configure_logging
from shared.queues import Heartbeat
from shared.reaper import Reaper

log = logging.getLogger(__name__)


def prepare_worker(app: Celery, queue: str, reaper: bool = False) -> None:
    """Hook a worker of ``queue`` up to logging, the bucket and heartbeats.

    Started for its own queue (``-Q serving``), the worker also consumes the
    other queues ``WORKER_QUEUES`` gives it; started with ``-Q`` naming other
    queues (``-Q batch``), exactly those. Its heartbeat lists the queues it
    consumes. Workers of the job queues also run the reaper, which revives
    jobs whose worker or message was lost.
    """
    heartbeats: list[Heartbeat] = []
    reapers: list[Reaper] = []
    task_signals.connect()

    @celeryd_after_setup.connect(weak=False)
    def on_after_setup(instance: Any = None, **_: Any) -> None:
        selected = instance.app.amqp.queues
        if set(selected.consume_from) == {queue}:
            for also in WORKER_QUEUES.get(queue, (queue,)):
                selected.select_add(also)

    @setup_logging.connect(weak=False)
    def on_setup_logging(**_: Any) -> None:
        # Connected, this replaces Celery's own set-up, before the pool forks.
        settings = get_clients().settings
        configure_logging(settings.log_level, settings.log_format)

    @worker_ready.connect(weak=False)
    def on_ready(sender: Any = None, **_: Any) -> None:
        clients = get_clients()
        clients.storage.ensure_bucket()
        consumed = list(sender.app.amqp.queues.consume_from)
        heartbeat = Heartbeat(clients.connection, sender.hostname, consumed)
        heartbeat.start()
        heartbeats.append(heartbeat)
        if reaper:
            reapers.append(Reaper(clients))
            reapers[-1].start()
        log.info("worker %s: consuming queues %r", sender.hostname, consumed)

    @worker_shutdown.connect(weak=False)
    def on_shutdown(**_: Any) -> None:
        for heartbeat in heartbeats:
            heartbeat.stop()
        for running in reapers:
            running.stop()
