"""Checks of a job request against its dataset's schema, before anything is queued."""

from __future__ import annotations

from shared.dataset_store import ColumnSchema, DatasetSchema
from shared.datasets import ColumnInfo, infer_task
from shared.errors import InvalidInput
from shared.jobs import JobRequest
from shared.targets import CLASSIFICATION

from services.gateway.schemas import JobCreate

MAX_CLASSES = 50
MIN_ROWS_PER_CLASS = 2


def check_job(request: JobCreate, schema: DatasetSchema, min_rows: int) -> JobRequest:
    """The request completed with defaults, or InvalidInput naming the problem."""
    target = _target_column(request, schema)
    id_column = request.id_column or schema.id_column
    if id_column is not None and schema.column(id_column) is None:
        raise InvalidInput(
            f"id_column {id_column!r} is not a column of dataset {schema.id}; "
            f"columns are {schema.names!r}"
        )
    features = _features(request, schema, id_column)
    task = request.task or infer_task(
        ColumnInfo(target.name, target.type, target.missing, target.distinct)
    )
    if task == CLASSIFICATION:
        _check_classes(target)
    _check_rows(target, schema, min_rows)
    return JobRequest(
        model=request.model,
        dataset_id=schema.id,
        target=target.name,
        task=task,
        features=features,
        id_column=id_column,
        algorithm=request.algorithm,
    )


def _target_column(request: JobCreate, schema: DatasetSchema) -> ColumnSchema:
    column = schema.column(request.target)
    if column is None:
        raise InvalidInput(
            f"target column {request.target!r} not found in dataset {schema.id}; "
            f"columns are {schema.names!r}"
        )
    if column.name == schema.id_column:
        raise InvalidInput(f"target column {column.name!r} is the dataset's id column")
    return column


def _features(request: JobCreate, schema: DatasetSchema, id_column: str | None) -> list[str]:
    excluded = {request.target, id_column}
    if request.features is None:
        features = [name for name in schema.names if name not in excluded]
    else:
        unknown = [name for name in request.features if schema.column(name) is None]
        if unknown:
            raise InvalidInput(
                f"features {unknown!r} not found in dataset {schema.id}; "
                f"columns are {schema.names!r}"
            )
        clashing = [name for name in request.features if name in excluded]
        if clashing:
            raise InvalidInput(
                f"features {clashing!r} cannot be used: the target and the id column "
                "are not features"
            )
        features = list(dict.fromkeys(request.features))
    if not features:
        raise InvalidInput(f"dataset {schema.id} has no feature columns besides the target")
    return features


def _check_classes(target: ColumnSchema) -> None:
    if target.distinct > MAX_CLASSES:
        raise InvalidInput(
            f"target column {target.name!r} has {target.distinct} classes; classification "
            f"allows at most {MAX_CLASSES} — use task 'regression' for a numeric score"
        )
    counts = target.counts or {}
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise InvalidInput(
            f"target column {target.name!r} has only one class ({only}); "
            "classification needs at least two"
        )
    smallest = min(counts, key=lambda value: counts[value])
    if counts[smallest] < MIN_ROWS_PER_CLASS:
        raise InvalidInput(
            f"smallest class {smallest!r} of target column {target.name!r} has "
            f"{counts[smallest]} row; training and testing need at least "
            f"{MIN_ROWS_PER_CLASS} per class"
        )


def _check_rows(target: ColumnSchema, schema: DatasetSchema, min_rows: int) -> None:
    labelled = schema.rows - target.missing
    if labelled < min_rows:
        raise InvalidInput(
            f"dataset {schema.id} has {labelled} rows with a value of {target.name!r}; "
            f"training needs at least {min_rows} (most to fit, some held out to test)"
        )
