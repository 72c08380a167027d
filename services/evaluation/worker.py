"""Entry point of the evaluation worker.

celery -A services.evaluation.worker worker -Q evaluation
"""

from services.evaluation import moodle, tasks  # noqa: F401  (register the tasks)
from shared.celery_app import EVALUATION_QUEUE, app
from shared.worker_boot import prepare_worker

prepare_worker(app, EVALUATION_QUEUE, reaper=True)

__all__ = ["app"]
