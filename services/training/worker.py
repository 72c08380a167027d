"""Entry point of the training worker.

celery -A services.training.worker worker -Q training
"""

from services.training import tasks  # noqa: F401  (registers the task)
from shared.celery_app import TRAINING_QUEUE, app
from shared.worker_boot import prepare_worker

prepare_worker(app, TRAINING_QUEUE, reaper=True)

__all__ = ["app"]
