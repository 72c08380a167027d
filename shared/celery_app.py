"""The Celery application every service shares: queue names, task names, config.

Services never import each other. The gateway and the workers meet here:
a producer sends a task by its name to its queue, and the worker of that
queue registers the function under the same name.
"""

from __future__ import annotations

import orjson
from celery import Celery
from kombu import Queue
from kombu.serialization import register

from shared.settings import Settings, get_settings

TRAINING_QUEUE = "training"
EVALUATION_QUEUE = "evaluation"
SERVING_QUEUE = "serving"
BATCH_QUEUE = "batch"
QUEUES = (TRAINING_QUEUE, EVALUATION_QUEUE, SERVING_QUEUE, BATCH_QUEUE)

# The queues each worker consumes, by the queue it is named after. The serving
# worker also scores whole datasets, from a queue of their own, so that a
# cohort scored overnight never waits in front of an interactive prediction.
WORKER_QUEUES = {
    TRAINING_QUEUE: (TRAINING_QUEUE,),
    EVALUATION_QUEUE: (EVALUATION_QUEUE,),
    SERVING_QUEUE: (SERVING_QUEUE, BATCH_QUEUE),
}

TRAIN_TASK = "training.train"
EVALUATE_TASK = "evaluation.evaluate"
PREDICT_TASK = "serving.predict"
MOODLE_EVALUATE_TASK = "evaluation.moodle_evaluate"
BATCH_TASK = "serving.batch"

TASK_QUEUES = {
    TRAIN_TASK: TRAINING_QUEUE,
    EVALUATE_TASK: EVALUATION_QUEUE,
    PREDICT_TASK: SERVING_QUEUE,
    MOODLE_EVALUATE_TASK: EVALUATION_QUEUE,
    BATCH_TASK: BATCH_QUEUE,
}


# Predict tasks go as orjson: rows of plain numbers and text, many a second.
# Job tasks stay plain JSON; workers accept both.
FAST_JSON = "orjson"
register(
    FAST_JSON,
    orjson.dumps,
    orjson.loads,
    content_type="application/x-orjson",
    content_encoding="utf-8",
)


def create_celery(settings: Settings) -> Celery:
    """A Celery app configured for long, idempotent jobs on Redis."""
    app = Celery("eduml", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        task_default_queue=TRAINING_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json", FAST_JSON],
        # A job message is acknowledged only once its task has finished, and
        # is given back to the queue when the worker running it dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_memory_per_child=settings.worker_max_memory_mib * 1024,
        # Redis re-delivers an unacknowledged message after this long, so it
        # must exceed the longest task the workers may run.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
        },
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        result_expires=settings.result_expires_s,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # The platform keeps its own bookkeeping (shared/task_signals.py);
        # Celery's event stream would cost extra Redis writes per task.
        worker_send_task_events=False,
        task_send_sent_event=False,
        enable_utc=True,
    )
    return app


app = create_celery(get_settings())
