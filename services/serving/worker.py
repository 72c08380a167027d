"""Entry point of the serving worker.

    celery -A services.serving.worker worker -Q serving

It answers predictions from the queue ``serving`` and scores whole datasets
from the queue ``batch``, which it consumes too whatever ``-Q`` names
(``WORKER_QUEUES`` in shared/celery_app.py).
"""

import logging

from services.serving import batch, tasks  # noqa: F401  (register the tasks)
from shared.celery_app import SERVING_QUEUE, app
from shared.worker_boot import prepare_worker

prepare_worker(app, SERVING_QUEUE)

# Celery logs each task's return value at INFO; predictions stay out of logs.
logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
# Nor a line per task received: a predict task lasts milliseconds.
logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)

__all__ = ["app"]
