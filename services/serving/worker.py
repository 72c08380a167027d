"""Entry point of the serving worker.

    celery -A services.serving.worker worker -Q serving
"""

import logging

from services.serving import tasks  # noqa: F401  (registers the task)
from shared.celery_app import SERVING_QUEUE, app
from shared.worker_boot import prepare_worker

prepare_worker(app, SERVING_QUEUE)

# Celery logs each task's return value at INFO; predictions stay out of logs.
logging.getLogger("celery.app.trace").setLevel(logging.WARNING)

__all__ = ["app"]
