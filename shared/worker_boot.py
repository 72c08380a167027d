"""What every worker does when it starts and stops, whatever its queue."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from shared.clients import get_clients
from shared.logs import configure_logging
from shared.queues import Heartbeat

log = logging.getLogger(__name__)


def prepare_worker(app: Celery, queue: str) -> None:
    """Hook a worker of ``queue`` up to logging, the bucket and heartbeats."""
    heartbeats: list[Heartbeat] = []

    @worker_ready.connect(weak=False)
    def on_ready(sender: Any = None, **_: Any) -> None:
        clients = get_clients()
        configure_logging(clients.settings.log_level)
        clients.storage.ensure_bucket()
        heartbeat = Heartbeat(clients.connection, sender.hostname, [queue])
        heartbeat.start()
        heartbeats.append(heartbeat)
        log.info("worker %s: consuming queue %r", sender.hostname, queue)

    @worker_shutdown.connect(weak=False)
    def on_shutdown(**_: Any) -> None:
        for heartbeat in heartbeats:
            heartbeat.stop()
