"""Uploaded datasets in S3: the normalised table and its schema.

A dataset is identified by the hash of the uploaded bytes (and of the parse
options, when any are given), so the same upload twice is one dataset. The
student-id column is pseudonymised before anything is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from shared import keys
from shared.datasets import (
    ColumnInfo,
    ParsedTable,
    read_stored_chunks,
    read_stored_csv,
    to_stored_csv,
)
from shared.errors import InvalidInput, NotFound
from shared.jobs import now_iso
from shared.pseudonyms import pseudonym, tenant_key
from shared.storage import Storage, sha256_hex

log = logging.getLogger(__name__)

DATASET_ID_HEX_CHARS = 32
# Columns with at most this many distinct values keep their value counts in
# the schema, so a job request can be checked without reading the table.
MAX_COUNTED_VALUES = 50
ID_COLUMN_NAMES = {
    "id",
    "student",
    "studentid",
    "student_id",
    "learner",
    "learner_id",
    "user",
    "userid",
    "user_id",
    "sampleid",
    "sample_id",
}


class ColumnSchema(BaseModel):
    name: str
    type: str
    missing: int
    distinct: int
    counts: dict[str, int] | None = None


class DatasetSchema(BaseModel):
    id: str
    rows: int
    columns: list[ColumnSchema]
    id_column: str | None = None
    encoding: str
    delimiter: str
    decimal: str
    notes: list[str] = Field(default_factory=list)
    created_at: str = Field(default_factory=now_iso)

    def column(self, name: str) -> ColumnSchema | None:
        return next((column for column in self.columns if column.name == name), None)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rows": self.rows,
            "columns": [
                {
                    "name": c.name,
                    "type": c.type,
                    "missing": c.missing,
                    "distinct": c.distinct,
                }
                for c in self.columns
            ],
            "id_column": self.id_column,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "decimal": self.decimal,
            "notes": self.notes,
            "created_at": self.created_at,
        }


def content_id(data: bytes, options: dict[str, str | None]) -> str:
    given = "&".join(
        f"{name}={value}" for name, value in sorted(options.items()) if value
    )
    return sha256_hex(data + (b"\n#" + given.encode() if given else b""))[
        :DATASET_ID_HEX_CHARS
    ]


def choose_id_column(parsed: ParsedTable, requested: str | None) -> str | None:
    """The declared id column, or a unique column with an id-like name."""
    names = [column.name for column in parsed.columns]
    if requested is not None:
        if requested not in names:
            raise InvalidInput(
                f"id_column {requested!r} is not a column of the file; "
                f"columns are {names!r}"
            )
        return requested
    for column in parsed.columns:
        unique = column.distinct == len(parsed.frame) and column.missing == 0
        if column.name.strip().lower() in ID_COLUMN_NAMES and unique:
            return column.name
    return None


class DatasetStore:
    def __init__(self, storage: Storage, pseudonym_secret: str) -> None:
        self.storage = storage
        self.pseudonym_secret = pseudonym_secret

    def save(
        self, tenant: str, identity: str, parsed: ParsedTable, id_column: str | None
    ) -> DatasetSchema:
        """Pseudonymise, then store the table and its schema; idempotent."""
        frame = parsed.frame
        if id_column is not None:
            frame = self._pseudonymise(tenant, frame, id_column)
        schema = DatasetSchema(
            id=identity,
            rows=len(frame),
            columns=[_column_schema(frame, column) for column in parsed.columns],
            id_column=id_column,
            encoding=parsed.encoding,
            delimiter=parsed.delimiter,
            decimal=parsed.decimal,
            notes=parsed.notes,
        )
        if id_column is not None:
            self._hide_id_values(schema, id_column)
            self._note_shared_ids(schema, id_column)
        self.storage.put_verified(
            keys.dataset_table(tenant, identity), to_stored_csv(frame)
        )
        self.storage.put_json(
            keys.dataset_schema(tenant, identity), schema.model_dump()
        )
        log.info("datasets: %s/%s stored, %d rows", tenant, identity, schema.rows)
        return schema

    def schema(self, tenant: str, identity: str) -> DatasetSchema:
        try:
            value, _ = self.storage.get_json(keys.dataset_schema(tenant, identity))
        except NotFound as error:
            raise NotFound(f"dataset {identity!r} not found") from error
        return DatasetSchema.model_validate(value)

    def exists(self, tenant: str, identity: str) -> bool:
        return self.storage.exists(keys.dataset_schema(tenant, identity))

    def load(self, tenant: str, identity: str) -> tuple[DatasetSchema, pd.DataFrame]:
        schema = self.schema(tenant, identity)
        data = self.storage.get_bytes(keys.dataset_table(tenant, identity))
        columns = [
            ColumnInfo(c.name, c.type, c.missing, c.distinct) for c in schema.columns
        ]
        return schema, read_stored_csv(data, columns)

    def read_chunks(
        self, tenant: str, schema: DatasetSchema, names: list[str], chunk_rows: int
    ) -> Iterator[pd.DataFrame]:
        """The columns ``names`` of the dataset's table, ``chunk_rows`` rows at a time.

        The table is fetched once, here; each chunk is parsed when it is reached.
        """
        data = self.storage.get_bytes(keys.dataset_table(tenant, schema.id))
        columns = [
            ColumnInfo(c.name, c.type, c.missing, c.distinct) for c in schema.columns
        ]
        return read_stored_chunks(data, columns, names, chunk_rows)

    def erase_student(self, tenant: str, identity: str, student_id: str) -> int:
        """Remove every row of one student from the stored table; the row count."""
        schema, frame = self.load(tenant, identity)
        if schema.id_column is None:
            raise InvalidInput(
                f"dataset {identity} has no id column, so no student's rows can be "
                "found in it; declare id_column at upload"
            )
        key = tenant_key(self.pseudonym_secret, tenant)
        keep = frame[schema.id_column] != pseudonym(key, student_id)
        removed = int((~keep).sum())
        if removed == 0:
            return 0
        frame = frame[keep].reset_index(drop=True)
        schema.rows = len(frame)
        for column in schema.columns:
            column.missing = int(frame[column.name].isna().sum())
            column.distinct = int(frame[column.name].nunique())
            if column.counts is not None:
                values = frame[column.name].dropna().value_counts()
                column.counts = {_value_text(v): int(n) for v, n in values.items()}
        schema.notes.append(f"{removed} rows of one student erased at {now_iso()}")
        self.storage.put_verified(
            keys.dataset_table(tenant, identity), to_stored_csv(frame)
        )
        self.storage.put_json(
            keys.dataset_schema(tenant, identity), schema.model_dump()
        )
        log.info(
            "datasets: %s/%s: %d rows of one student erased", tenant, identity, removed
        )
        return removed

    def _pseudonymise(
        self, tenant: str, frame: pd.DataFrame, column: str
    ) -> pd.DataFrame:
        key = tenant_key(self.pseudonym_secret, tenant)
        frame = frame.copy()
        frame[column] = [
            None if _missing(value) else pseudonym(key, _value_text(value))
            for value in frame[column]
        ]
        return frame

    @staticmethod
    def _note_shared_ids(schema: DatasetSchema, id_column: str) -> None:
        column = schema.column(id_column)
        if column is not None and column.distinct < schema.rows - column.missing:
            schema.notes.append(
                f"id column {id_column!r} has {column.distinct} distinct values in "
                f"{schema.rows} rows: rows share ids, and erasing one id erases all "
                "of its rows"
            )

    @staticmethod
    def _hide_id_values(schema: DatasetSchema, id_column: str) -> None:
        for column in schema.columns:
            if column.name == id_column:
                column.type = "categorical"
                column.counts = None


def _column_schema(frame: pd.DataFrame, column: ColumnInfo) -> ColumnSchema:
    counts = None
    if column.distinct <= MAX_COUNTED_VALUES:
        values = frame[column.name].dropna().value_counts()
        counts = {_value_text(value): int(n) for value, n in values.items()}
    return ColumnSchema(
        name=column.name,
        type=column.type,
        missing=column.missing,
        distinct=column.distinct,
        counts=counts,
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
