"""Dataset uploads: parse, check, pseudonymise and store a CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile
from fastapi.concurrency import run_in_threadpool

from services.gateway.deps import clients, tenant
from services.gateway.responses import SafeJSONResponse
from services.gateway.schemas import DatasetId, error_responses
from shared.clients import Clients
from shared.dataset_store import choose_id_column, content_id
from shared.datasets import parse_csv
from shared.errors import Conflict, InvalidInput
from shared.jobs import now_iso

router = APIRouter(
    prefix="/v1/datasets",
    tags=["datasets"],
    responses=error_responses(401, 404, 413, 422, 503),
)

ALLOWED_DELIMITERS = (",", ";", "\t", "|")
ALLOWED_DECIMALS = (".", ",")


@router.post("", status_code=201, response_class=SafeJSONResponse)
async def upload_dataset(
    file: UploadFile = File(description="A CSV file with a header row."),
    id_column: str | None = Form(None, description="Student-id column, pseudonymised."),
    delimiter: str | None = Form(None, description="Forced delimiter: , ; tab or |"),
    decimal: str | None = Form(None, description="Forced decimal mark: . or ,"),
    encoding: str | None = Form(None, description="Forced text encoding, e.g. cp1252"),
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> SafeJSONResponse:
    delimiter = "\t" if delimiter in ("tab", "\\t") else delimiter
    _check_choice("delimiter", delimiter, ALLOWED_DELIMITERS)
    _check_choice("decimal", decimal, ALLOWED_DECIMALS)
    data = await file.read()
    options = {
        "delimiter": delimiter,
        "decimal": decimal,
        "encoding": encoding,
        "id_column": id_column,
    }
    schema = await run_in_threadpool(ingest, c, owner, data, options)
    return SafeJSONResponse(schema, status_code=201)


def ingest(
    c: Clients, owner: str, data: bytes, options: dict[str, Any]
) -> dict[str, Any]:
    identity = content_id(data, options)
    if c.datasets.exists(owner, identity):
        return c.datasets.schema(owner, identity).public()
    try:
        parsed = parse_csv(
            data,
            delimiter=options["delimiter"],
            decimal=options["decimal"],
            encoding=options["encoding"],
            max_rows=c.settings.max_csv_rows,
            max_columns=c.settings.max_csv_columns,
        )
    except LookupError as error:  # a codec that is not a text encoding: rot13, hex
        raise InvalidInput(
            "encoding must name a text encoding such as 'utf-8' or 'cp1252'; "
            f"received {options['encoding']!r}"
        ) from error
    except UnicodeError as error:  # a codec failing its own way: idna, undefined
        raise InvalidInput(
            f"file could not be decoded with encoding={options['encoding']!r}: "
            f"{error}; re-export as UTF-8 or choose another encoding"
        ) from error
    id_column = choose_id_column(parsed, options["id_column"])
    return c.datasets.save(owner, identity, parsed, id_column).public()


@router.get("/{dataset_id}", response_class=SafeJSONResponse)
def get_dataset(
    dataset_id: DatasetId, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    return c.datasets.schema(owner, dataset_id).public()


@router.delete("/{dataset_id}/students/{student_id}", response_class=SafeJSONResponse)
def erase_student(
    dataset_id: DatasetId,
    student_id: str = Path(
        min_length=1,
        max_length=256,
        description="The student's id as the LMS knows it.",
    ),
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    """Erase a student's rows; versions trained on the dataset are marked.

    The raw id is pseudonymised here exactly as at upload, and never stored.
    """
    busy = [
        job_id
        for tenant_id, job_id in c.jobs.active()
        if tenant_id == owner
        and c.jobs.get(owner, job_id).request.dataset_id == dataset_id
    ]
    if busy:
        raise Conflict(
            f"dataset {dataset_id} is in use by unfinished job(s) {busy!r}; erase the "
            "student once they have finished, so that no job trains on rows that move"
        )
    removed = c.datasets.erase_student(owner, dataset_id, student_id)
    marked = []
    if removed:
        erasure = {"dataset_id": dataset_id, "rows": removed, "at": now_iso()}
        for record in c.registry.versions_of_dataset(owner, dataset_id):
            c.registry.update_version(
                owner,
                record.model,
                record.version,
                lambda version: version.erasures.append(erasure),
            )
            marked.append({"model": record.model, "version": record.version})
    return {"dataset_id": dataset_id, "rows_erased": removed, "versions_marked": marked}


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {allowed!r}; received {value!r}")
