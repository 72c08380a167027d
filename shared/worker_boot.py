"""What every worker does when it starts and stops, whatever its queue."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_ready, worker_shutdown

from shared import task_signals
from shared.clients import get_clients
from shared.logs import configure_logging
from shared.queues import Heartbeat
from shared.reaper import Reaper

log = logging.getLogger(__name__)


def prepare_worker(app: Celery, queue: str, reaper: bool = False) -> None:
    """Hook a worker of ``queue`` up to logging, the bucket and heartbeats.

    Workers of the job queues also run the reaper, which revives jobs whose
    worker or message was lost.
    """
    heartbeats: list[Heartbeat] = []
    reapers: list[Reaper] = []
    task_signals.connect()

    @setup_logging.connect(weak=False)
    def on_setup_logging(**_: Any) -> None:
        # Connected, this replaces Celery's own set-up, before the pool forks.
        settings = get_clients().settings
        configure_logging(settings.log_level, settings.log_format)

    @worker_ready.connect(weak=False)
    def on_ready(sender: Any = None, **_: Any) -> None:
        clients = get_clients()
        clients.storage.ensure_bucket()
        heartbeat = Heartbeat(clients.connection, sender.hostname, [queue])
        heartbeat.start()
        heartbeats.append(heartbeat)
        if reaper:
            reapers.append(Reaper(clients))
            reapers[-1].start()
        log.info("worker %s: consuming queue %r", sender.hostname, queue)

    @worker_shutdown.connect(weak=False)
    def on_shutdown(**_: Any) -> None:
        for heartbeat in heartbeats:
            heartbeat.stop()
        for running in reapers:
            running.stop()
