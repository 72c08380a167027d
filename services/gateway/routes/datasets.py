"""Dataset uploads: parse, check, pseudonymise and store a CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from services.gateway.deps import clients, tenant
from services.gateway.responses import SafeJSONResponse
from shared.clients import Clients
from shared.dataset_store import choose_id_column, content_id
from shared.datasets import parse_csv
from shared.errors import InvalidInput

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

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
    options = {"delimiter": delimiter, "decimal": decimal, "encoding": encoding,
               "id_column": id_column}
    schema = await run_in_threadpool(ingest, c, owner, data, options)
    return SafeJSONResponse(schema, status_code=201)


def ingest(c: Clients, owner: str, data: bytes, options: dict[str, Any]) -> dict[str, Any]:
    identity = content_id(data, options)
    if c.datasets.exists(owner, identity):
        return c.datasets.schema(owner, identity).public()
    parsed = parse_csv(
        data,
        delimiter=options["delimiter"],
        decimal=options["decimal"],
        encoding=options["encoding"],
        max_rows=c.settings.max_csv_rows,
        max_columns=c.settings.max_csv_columns,
    )
    id_column = choose_id_column(parsed, options["id_column"])
    return c.datasets.save(owner, identity, parsed, id_column).public()


@router.get("/{dataset_id}", response_class=SafeJSONResponse)
def get_dataset(
    dataset_id: str, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    return c.datasets.schema(owner, dataset_id).public()


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {allowed!r}; received {value!r}")
