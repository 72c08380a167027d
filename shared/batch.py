"""Batch scoring: which datasets a version can score, and the CSV's columns.

The gateway checks a batch request with ``check_scorable`` before it queues
the job; the serving worker checks again before it reads the table, and
writes the columns ``csv_columns`` names.
"""

from __future__ import annotations

from shared.dataset_store import DatasetSchema
from shared.datasets import NUMERIC
from shared.errors import InvalidInput
from shared.registry import VersionRecord

ROW_COLUMN = "row"  # the row's position in the uploaded file, from 1
ID_COLUMN = "id"  # the dataset's id column, as stored: a pseudonym
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"


def has_probabilities(version: VersionRecord) -> bool:
    return version.has_proba and version.classes is not None


def csv_columns(version: VersionRecord, schema: DatasetSchema) -> list[str]:
    """The header of the predictions CSV of ``version`` on the dataset."""
    names = [ROW_COLUMN]
    if schema.id_column is not None:
        names.append(ID_COLUMN)
    names.append(PREDICTION_COLUMN)
    if has_probabilities(version):
        names += [f"{PROBABILITY_PREFIX}{label}" for label in version.classes or []]
    return names


def check_scorable(version: VersionRecord, schema: DatasetSchema) -> None:
    """InvalidInput unless the dataset holds every feature the version needs.

    A numeric feature needs a numeric column: ``/predict`` refuses text for
    it, so a batch job would fail on the first such row.
    """
    where = f"{version.model} v{version.version}"
    missing = [f.name for f in version.features if schema.column(f.name) is None]
    if missing:
        raise InvalidInput(
            f"dataset {schema.id} lacks the feature columns {missing!r} that "
            f"{where} needs; the dataset's columns are {schema.names!r}"
        )
    text = [
        f.name
        for f in version.features
        if f.type == NUMERIC and _column_type(schema, f.name) != NUMERIC
    ]
    if text:
        raise InvalidInput(
            f"columns {text!r} of dataset {schema.id} hold text, but {where} "
            "needs numbers in them (an empty cell or NA for a missing value)"
        )


def _column_type(schema: DatasetSchema, name: str) -> str | None:
    column = schema.column(name)
    return None if column is None else column.type
