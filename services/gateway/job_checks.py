"""Checks of a job request against its dataset's schema, before anything is queued."""

from __future__ import annotations

from services.gateway.schemas import JobCreate
from shared.dataset_store import ColumnSchema, DatasetSchema
from shared.datasets import CATEGORICAL, NUMERIC, ColumnInfo, infer_task
from shared.errors import InvalidInput
from shared.jobs import (
    CLASSIFICATION_GAP_METRICS,
    REGRESSION_GAP_METRICS,
    Gates,
    JobRequest,
)
from shared.targets import CLASSIFICATION

MAX_CLASSES = 50
# Below this share for its smallest class, a target counts as imbalanced.
IMBALANCED_SHARE = 0.2
MIN_ROWS_PER_CLASS = 2
# A text column with a different value on each of at least this many rows is
# taken for a student id: it predicts nothing, and a model keeps its values.
ID_LIKE_MIN_ROWS = 20


def check_job(
    request: JobCreate,
    schema: DatasetSchema,
    min_rows: int,
    protected: list[str],
    model_gates: Gates | None,
    min_per_class: int = MIN_ROWS_PER_CLASS,
) -> JobRequest:
    """The request completed with defaults, or InvalidInput naming the problem.

    ``protected`` is the tenant's deny-list of attributes that may never be
    features; ``model_gates`` the gates stored on the model, if any.
    ``min_rows`` and ``min_per_class`` are the labelled rows a job needs, in
    all and of each class; ``/v1`` always asks for ``MIN_TRAINING_ROWS`` and
    ``MIN_ROWS_PER_CLASS`` (only the Moodle backend trains on fewer).
    """
    target = _target_column(request, schema)
    id_column = _id_column(request, schema, target)
    _check_group_columns(request, schema, target.name)
    features = _features(request, schema, id_column)
    _check_protected(features, protected)
    task = request.task or infer_task(
        ColumnInfo(target.name, target.type, target.missing, target.distinct)
    )
    if task == CLASSIFICATION:
        _check_classes(target, min_per_class)
    else:
        _check_numeric(target)
    _check_rows(target, schema, min_rows)
    gates = request.gates or model_gates or Gates()
    _check_gates(gates, task)
    return JobRequest(
        model=request.model,
        dataset_id=schema.id,
        target=target.name,
        task=task,
        features=features,
        id_column=id_column,
        algorithm=request.algorithm,
        tuning=request.tuning,
        class_weight=_class_weight(request, target, task),
        group_split_column=request.group_split_column,
        group_columns=request.group_columns,
        min_group_size=request.min_group_size,
        capacity=request.capacity,
        gates=gates,
    )


def _check_group_columns(
    request: JobCreate, schema: DatasetSchema, target: str
) -> None:
    named = [*request.group_columns]
    if request.group_split_column:
        named.append(request.group_split_column)
    unknown = [name for name in named if schema.column(name) is None]
    if unknown:
        raise InvalidInput(
            f"group columns {unknown!r} not found in dataset {schema.id}; "
            f"columns are {schema.names!r}"
        )
    if target in named:
        raise InvalidInput(f"target column {target!r} cannot also be a group column")
    if len(set(request.group_columns)) != len(request.group_columns):
        raise InvalidInput(
            f"group_columns lists a column twice: {request.group_columns!r}"
        )


def _check_protected(features: list[str], protected: list[str]) -> None:
    denied = {name.strip().casefold() for name in protected}
    refused = [name for name in features if name.strip().casefold() in denied]
    if refused:
        raise InvalidInput(
            f"features {refused!r} are protected attributes of this tenant and may not "
            f"be used as features (deny-list {sorted(protected)!r}); name them in "
            "group_columns to report on them instead"
        )


def _class_weight(request: JobCreate, target: ColumnSchema, task: str) -> str | None:
    if task != CLASSIFICATION or request.class_weight == "none":
        return None
    if request.class_weight == "balanced":
        return "balanced"
    counts = list((target.counts or {}).values())
    if counts and min(counts) / sum(counts) < IMBALANCED_SHARE:
        return "balanced"
    return None


def _check_gates(gates: Gates, task: str) -> None:
    allowed = (
        CLASSIFICATION_GAP_METRICS if task == CLASSIFICATION else REGRESSION_GAP_METRICS
    )
    if gates.gap_metric not in allowed and gates.max_group_gap is not None:
        raise InvalidInput(
            f"gates.gap_metric must be one of {allowed!r} for {task}; "
            f"received {gates.gap_metric!r}"
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


def _id_column(
    request: JobCreate, schema: DatasetSchema, target: ColumnSchema
) -> str | None:
    id_column = request.id_column or schema.id_column
    if id_column is not None and schema.column(id_column) is None:
        raise InvalidInput(
            f"id_column {id_column!r} is not a column of dataset {schema.id}; "
            f"columns are {schema.names!r}"
        )
    if id_column == target.name:
        raise InvalidInput(
            f"id_column {id_column!r} is the target column; the id column names "
            "students, the target is what is predicted"
        )
    return id_column


def _features(
    request: JobCreate, schema: DatasetSchema, id_column: str | None
) -> list[str]:
    excluded = {request.target, id_column, request.group_split_column}
    if not request.use_group_columns_as_features:
        excluded.update(request.group_columns)
    if request.features is None:
        excluded.update(id_like_columns(schema))
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
                f"features {clashing!r} cannot be used: the target, the id column, "
                "the group split column and (unless use_group_columns_as_features) "
                "the group columns are not features"
            )
        features = list(dict.fromkeys(request.features))
        id_like = set(id_like_columns(schema))
        like_ids = [name for name in features if name in id_like]
        if like_ids:
            raise InvalidInput(
                f"features {like_ids!r} hold a different text value on every row, "
                "like student ids: an id predicts nothing, and the model would "
                "keep its values; name it id_column (its values are then "
                "pseudonymised), or leave it out of features"
            )
    if not features:
        raise InvalidInput(
            f"dataset {schema.id} has no feature columns besides the target"
        )
    return features


def id_like_columns(schema: DatasetSchema) -> list[str]:
    """The text columns that hold a different value on every row."""
    if schema.rows < ID_LIKE_MIN_ROWS:
        return []
    return [
        column.name
        for column in schema.columns
        if column.type == CATEGORICAL
        and column.missing == 0
        and column.distinct == schema.rows
        and column.name != schema.id_column
    ]


def left_out_as_ids(request: JobRequest, schema: DatasetSchema) -> list[str]:
    """Notes for the job: columns not made features because they look like ids."""
    used = {request.target, request.id_column, *request.features}
    return [
        f"column {name!r} was left out of the features: it holds a different text "
        "value on every row, like a student id; name it id_column to have it "
        "pseudonymised"
        for name in id_like_columns(schema)
        if name not in used
    ]


def _check_classes(target: ColumnSchema, min_per_class: int) -> None:
    if target.distinct > MAX_CLASSES:
        raise InvalidInput(
            f"target column {target.name!r} has {target.distinct} classes; "
            f"classification allows at most {MAX_CLASSES} — use task 'regression' "
            "for a numeric score"
        )
    counts = target.counts or {}
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise InvalidInput(
            f"target column {target.name!r} has only one class ({only}); "
            "classification needs at least two"
        )
    smallest = min(counts, key=lambda value: counts[value])
    if counts[smallest] < min_per_class:
        raise InvalidInput(
            f"smallest class {smallest!r} of target column {target.name!r} has "
            f"{counts[smallest]} row; training and testing need at least "
            f"{min_per_class} per class"
        )


def _check_numeric(target: ColumnSchema) -> None:
    if target.type != NUMERIC:
        raise InvalidInput(
            f"target column {target.name!r} is categorical; task 'regression' needs "
            "a numeric target — use task 'classification' or another target"
        )


def _check_rows(target: ColumnSchema, schema: DatasetSchema, min_rows: int) -> None:
    labelled = schema.rows - target.missing
    if labelled < min_rows:
        raise InvalidInput(
            f"dataset {schema.id} has {labelled} rows with a value of {target.name!r}; "
            f"training needs at least {min_rows} (most to fit, some held out to test)"
        )
