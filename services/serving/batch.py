"""The batch task: every row of a stored dataset scored by one version, as a CSV.

A batch job goes queued -> scoring -> done | failed, on the queue ``batch``,
which the serving worker consumes beside ``serving``. The task fetches the
dataset's table once and scores it ``BATCH_CHUNK_ROWS`` rows at a time with
the serving task's own ``predict_frame``, recording the rows done on the job
between chunks (every ``PROGRESS_EVERY_S`` at most). It writes one CSV to
S3: ``row`` (the row's position in the uploaded file, from 1), ``id`` (the
pseudonym the dataset stores for the student, when it has an id column),
``prediction`` and, for classifiers with probabilities, ``probability_<class>``.

Like every job step it is idempotent: a job whose worker died is scored
again from its first row, and the same CSV is written over the first one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import orjson
import pandas as pd
from celery import Task

from services.serving.tasks import predict_frame
from shared import artifacts, costs, keys, metrics
from shared.batch import check_scorable, csv_columns, has_probabilities
from shared.celery_app import BATCH_QUEUE, BATCH_TASK, app
from shared.clients import Clients
from shared.dataset_store import DatasetSchema
from shared.datasets import NUMERIC
from shared.errors import InvalidInput
from shared.job_steps import run_step
from shared.jobs import JobKind, JobRecord, JobStatus, Progress
from shared.logs import job_context
from shared.registry import VersionRecord
from shared.settings import get_settings

log = logging.getLogger(__name__)
settings = get_settings()

# The hard time limit comes this long after the soft one, which fails the job.
HARD_LIMIT_MARGIN_S = 30
# The rows done are written to the job after a chunk, at most this often: a
# write costs a read and a conditional write of the record in S3.
PROGRESS_EVERY_S = 0.5
# A CSV field holding one of these is quoted, its quotes doubled.
CSV_SPECIAL = ('"', ",", "\r", "\n")


@app.task(
    name=BATCH_TASK,
    bind=True,
    soft_time_limit=settings.batch_time_limit_s,
    time_limit=settings.batch_time_limit_s + HARD_LIMIT_MARGIN_S,
)
def score(task: Task, tenant: str, job_id: str) -> None:
    with job_context(job_id=job_id, tenant=tenant, queue=BATCH_QUEUE):
        run_step(
            task,
            tenant,
            job_id,
            JobStatus.SCORING,
            ready_to_score,
            run_scoring,
            settings.batch_time_limit_s,
        )


def ready_to_score(record: JobRecord) -> bool:
    return record.kind is JobKind.BATCH and record.status in (
        JobStatus.QUEUED,
        JobStatus.SCORING,
    )


def run_scoring(clients: Clients, record: JobRecord) -> None:
    with costs.measure() as cost:
        rows = score_dataset(clients, record)
        spent = cost.summary()

    costs.report(clients.connection, "scoring", spent)
    clients.jobs.set_status(
        record.tenant,
        record.id,
        JobStatus.DONE,
        progress=Progress(rows_done=rows, rows_total=rows),
        costs={**record.costs, "scoring": spent},
    )
    metrics.inc(clients.connection, "eduml_jobs_finished_total", {"status": "done"})
    log.info(
        "batch job %s: %d rows scored by %s v%s in %.2f s",
        record.id,
        rows,
        record.model,
        record.version,
        spent["wall_s"],
    )


def score_dataset(clients: Clients, record: JobRecord) -> int:
    """Score every row of the job's dataset and store the CSV; the rows scored."""
    version, pipeline = load_version(clients, record)
    schema = clients.datasets.schema(record.tenant, record.request.dataset_id)
    check_scorable(version, schema)

    header = ",".join(map(_field, csv_columns(version, schema))) + "\n"
    lines, rows = score_rows(clients, record, version, pipeline, schema)

    clients.storage.put_verified(
        keys.batch_predictions(record.tenant, record.id),
        "".join([header, *lines]).encode(),
        content_type="text/csv",
    )
    return rows


def score_rows(
    clients: Clients,
    record: JobRecord,
    version: VersionRecord,
    pipeline: Any,
    schema: DatasetSchema,
) -> tuple[list[str], int]:
    """The CSV lines of every row, a chunk at a time, and the number of rows.

    The rows done are recorded on the job between chunks; the last count goes
    with the status "done".
    """
    id_column = schema.id_column
    names = [feature.name for feature in version.features]
    if id_column is not None and id_column not in names:
        names.append(id_column)
    chunks = clients.datasets.read_chunks(
        record.tenant, schema, names, settings.batch_chunk_rows
    )
    lines, done, recorded_at = [], 0, time.monotonic()
    for chunk in chunks:
        lines.append(score_chunk(version, pipeline, chunk, done, id_column))
        done += len(chunk)
        if done < schema.rows and time.monotonic() - recorded_at >= PROGRESS_EVERY_S:
            record_progress(clients, record, done, schema.rows)
            recorded_at = time.monotonic()
    return lines, done


def load_version(clients: Clients, record: JobRecord) -> tuple[VersionRecord, Any]:
    if record.version is None:
        raise InvalidInput(f"batch job {record.id} names no version to score with")
    version = clients.registry.get_version(record.tenant, record.model, record.version)
    return version, artifacts.load(clients.storage, version)


def record_progress(clients: Clients, record: JobRecord, done: int, total: int) -> None:
    def change(job: JobRecord) -> None:
        job.progress = Progress(rows_done=done, rows_total=total)

    clients.jobs.update(record.tenant, record.id, change)


def score_chunk(
    version: VersionRecord,
    pipeline: Any,
    chunk: pd.DataFrame,
    first_row: int,
    id_column: str | None,
) -> str:
    """The CSV lines of one chunk, whose first row is ``first_row`` (from 0)."""
    frame = feature_frame(version, chunk)
    predictions, probabilities = predict_frame(version, pipeline, frame)

    rows = np.arange(first_row + 1, first_row + len(chunk) + 1)
    fields = [_fields(rows)]
    if id_column is not None:
        fields.append(_fields(chunk[id_column].to_numpy(dtype=object)))
    fields.append(_fields(predictions))
    if probabilities is not None and has_probabilities(version):
        fields.append(_number_fields(probabilities))
    return csv_rows(fields)


def feature_frame(version: VersionRecord, chunk: pd.DataFrame) -> pd.DataFrame:
    """The chunk's features as the serving task builds them for ``/predict``.

    ``/predict`` turns each value of a numeric feature into a float, of a
    categorical one into text (a whole number without its ``.0``: ``3`` for
    3.0), and a missing one into null; the serving task makes numbers a float
    array with NaN, and text an object column with NaN. The stored columns
    become the same here, a whole column at a time.
    """
    data: dict[str, Any] = {}
    for feature in version.features:
        column = chunk[feature.name]
        if feature.type == NUMERIC:
            data[feature.name] = column.to_numpy(dtype=float, na_value=np.nan)
        else:
            data[feature.name] = pd.Series(_category_values(column), dtype=object)
    return pd.DataFrame(data)


def _category_values(column: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=object, na_value=np.nan)
    codes, distinct = pd.factorize(column)  # a missing value gets the code -1
    texts = [_number_text(value) for value in distinct.tolist()]
    return np.array([*texts, np.nan], dtype=object)[codes]


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def csv_rows(fields: list[list[str]]) -> str:
    """Lines of comma-separated fields, one list per column (or group of
    columns), each line ended."""
    return "".join(f"{line}\n" for line in map(",".join, zip(*fields, strict=True)))


def _fields(values: np.ndarray) -> list[str]:
    """One CSV field per value: a number as the API writes it, text quoted where
    it must be, a missing value empty."""
    if values.dtype.kind in "iub":
        return list(map(str, values.tolist()))
    if values.dtype.kind == "f":
        return _number_fields(values)
    texts = list(map(str, values.tolist()))
    for position in np.flatnonzero(pd.isna(values)).tolist():
        texts[position] = ""
    if _needs_quotes("".join(texts)):
        return list(map(_field, texts))
    return texts


def _number_fields(values: np.ndarray) -> list[str]:
    """Each row of a float array of one or two dimensions as CSV text.

    The numbers are written by orjson, as the gateway writes them in JSON:
    the shortest text that reads back to the same float. A missing or
    non-finite number is empty, as null is in the API's answers.
    """
    if len(values) == 0:
        return []
    text = orjson.dumps(
        np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY
    ).decode()
    rows = text[2:-2].split("],[") if values.ndim == 2 else text[1:-1].split(",")
    if not np.isfinite(values).all():
        rows = [row.replace("null", "") for row in rows]
    return rows


def _field(text: str) -> str:
    if _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _needs_quotes(text: str) -> bool:
    return any(mark in text for mark in CSV_SPECIAL)
