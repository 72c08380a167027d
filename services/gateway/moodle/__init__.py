"""Moodle's machine-learning backend protocol, spoken by a FastAPI app of its own.

A Moodle site set to use the "Python machine learning backend" in server
mode calls eight routes at the root of a host and port: ``/version``,
``/training``, ``/prediction``, ``/evaluation``, ``/evaluationlog``,
``/export``, ``/import`` and ``/deletemodel``. ``app.py`` serves them
(``uvicorn services.gateway.moodle.app:app``, which ``make up`` starts on
``MOODLE_BACKEND_HOST:MOODLE_BACKEND_PORT`` when ``MOODLE_BACKEND_USERS`` is
set). The app meets the workers like the main gateway does: Moodle's samples
become platform datasets, training goes through normal training jobs,
predictions through the serving queue and Moodle's evaluation procedure
through a task on the evaluation queue. Every answer waits for its work, as
Moodle expects.

- ``users.py``: the Basic-auth users and the tenant each belongs to.
- ``csvfile.py``: Moodle's CSV files (metadata lines, header, rows).
- ``store.py``: what the backend keeps per Moodle model in S3.
- ``backend.py``: training, prediction, evaluation, export, import, delete.
"""
