"""Entry point of the serving worker: `celery -A services.serving.worker worker -Q serving`."""

from services.serving import tasks  # noqa: F401  (registers the task)
from shared.celery_app import SERVING_QUEUE, app
from shared.worker_boot import prepare_worker

prepare_worker(app, SERVING_QUEUE)

__all__ = ["app"]
