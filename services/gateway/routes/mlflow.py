"""MLflow's scoring protocol: ``POST /v1/models/{model}/invocations``.

A client written for ``mlflow models serve`` gets the champion's predictions
by pointing at this route instead of ``/invocations``, with the tenant's API
key as its bearer token. The body is one of:

- ``application/json`` with exactly one of
  ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``,
  ``{"dataframe_records": [{column: value}, ...]}``,
  ``{"instances": [{column: value}, ...]}`` (rows) or
  ``{"inputs": {column: [value, ...]}}`` (columns); ``instances`` and
  ``inputs`` also take rows as lists, and ``"params"`` may come beside them
  (the models here take none, so they are ignored);
- ``text/csv``: a header naming the columns, then one row per student, each
  with as many fields as the header.

Columns are matched by name, extra ones ignored; values given without names
are taken in the order of the model's features. The answer is
``{"predictions": [...]}``. Errors are MLflow's: a JSON body
``{"error_code": ..., "message": ...}`` (``BAD_REQUEST`` for a body that
cannot be read, ``INVALID_PARAMETER_VALUE`` for data the model cannot use,
``UNAUTHENTICATED``, ``RESOURCE_DOES_NOT_EXIST``, ``RESOURCE_CONFLICT`` for a
model without a champion, ...), and a plain-text 415 for a content type other
than JSON or CSV in UTF-8.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.gateway.batching import batcher_for
from services.gateway.deps import clients, tenant
from services.gateway.predictions import to_rows
from services.gateway.responses import SafeJSONResponse
from services.gateway.routes.models import champion_record
from services.gateway.schemas import ModelName
from shared.clients import Clients
from shared.datasets import parse_csv
from shared.errors import InvalidInput, PayloadTooLarge, PlatformError
from shared.registry import VersionRecord
from shared.settings import Settings

JSON, CSV = "application/json", "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS = "params"

# MLflow's error codes for our HTTP statuses (mlflow.protos.databricks_pb2).
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    413: "REQUEST_LIMIT_EXCEEDED",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class MlflowErrorBody(BaseModel):
    error_code: str
    message: str


class MlflowError(Exception):
    def __init__(
        self, message: str, code: str = "BAD_REQUEST", status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status

    def response(self) -> Response:
        body = {"error_code": self.code, "message": self.message}
        return SafeJSONResponse(body, status_code=self.status)


def serves(path: str) -> bool:
    """Whether ``path`` is MLflow's route, ``/v1/models/{model}/invocations``."""
    parts = path.rstrip("/").split("/")
    return (
        len(parts) == 5
        and parts[:3] == ["", "v1", "models"]
        and parts[4] == "invocations"
    )


def too_large(path: str, message: str) -> Response:
    """A body over the gateway's limit (see limits.py), as MLflow says it."""
    return MlflowError(message, ERROR_CODES[413], 413).response()


class MlflowRoute(APIRoute):
    """Every error of the route, authentication included, in MLflow's form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except MlflowError as error:
                return error.response()
            except PlatformError as error:
                status = 400 if error.status_code == 422 else error.status_code
                code = ERROR_CODES.get(error.status_code, "INTERNAL_ERROR")
                response = MlflowError(error.message, code, status).response()
                if status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
                return response
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()))
                return MlflowError(f"{where}: {first.get('msg', 'invalid')}").response()

        return route


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": MlflowErrorBody, "description": f"MLflow error {code}"}
    for status, code in ERROR_CODES.items()
    if status != 422
}
ERROR_RESPONSES[415] = {
    "description": "A content type other than JSON or CSV in UTF-8",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
REQUEST_BODY = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "description": "Exactly one of "
                + ", ".join(FORMATS)
                + ", and optionally params.",
            }
        },
        CSV: {"schema": {"type": "string", "description": "A header, then rows."}},
    },
}

router = APIRouter(
    prefix="/v1/models",
    tags=["mlflow"],
    route_class=MlflowRoute,
    responses=ERROR_RESPONSES,
)


@router.post(
    "/{model}/invocations",
    response_class=SafeJSONResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    summary="Predict with the champion, in MLflow's scoring format",
)
async def invocations(
    model: ModelName,
    request: Request,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> Response:
    media, problem = _media_type(request.headers.get("content-type", ""))
    if problem:
        return PlainTextResponse(problem, status_code=415)
    body = await request.body()
    record = await run_in_threadpool(champion_record, c, owner, model)
    instances = (
        _csv_instances(body, c.settings)
        if media == CSV
        else _json_instances(body, record)
    )
    if not instances:
        raise MlflowError("the input holds no rows to predict")
    limit = c.settings.max_predict_instances
    if len(instances) > limit:
        raise MlflowError(
            f"{len(instances)} rows exceed the limit of {limit} per "
            "request; send smaller requests",
            "REQUEST_LIMIT_EXCEEDED",
            413,
        )
    try:
        rows = to_rows(record, instances)
    except PlatformError as error:
        raise MlflowError(error.message, "INVALID_PARAMETER_VALUE") from error
    answer = await batcher_for(c.settings).predict(owner, record, rows)
    return SafeJSONResponse({"predictions": answer["predictions"]})


def _media_type(header: str) -> tuple[str, str | None]:
    """The media type, or the reason it is refused (MLflow answers those 415)."""
    media, *parameters = (part.strip() for part in header.split(";"))
    values = {
        key.strip().lower(): value.strip().strip('"').lower()
        for key, _, value in (p.partition("=") for p in parameters if p)
    }
    media = media.lower()
    if media not in (JSON, CSV):
        return media, (
            f"this endpoint takes the content types {JSON!r} and {CSV!r}; "
            f"received {header!r}"
        )
    if values.get("charset", "utf-8") != "utf-8":
        return (
            media,
            f"only UTF-8 bodies are read; received charset {values['charset']!r}",
        )
    unknown = sorted(set(values) - {"charset"})
    if unknown:
        return (
            media,
            f"unknown content type parameters {unknown!r}; only charset is read",
        )
    return media, None


def _json_instances(body: bytes, record: VersionRecord) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MlflowError(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise MlflowError(
            "the body's JSON nests arrays or objects too deeply"
        ) from error
    if not isinstance(document, dict):
        raise MlflowError(
            f"the input must be a JSON object with exactly one of the fields "
            f"{list(FORMATS)!r}; received a {type(document).__name__}"
        )
    given = [name for name in FORMATS if name in document]
    if len(given) != 1:
        raise MlflowError(
            f"the input must be a JSON object with exactly one of the fields "
            f"{list(FORMATS)!r}; received the fields {sorted(document)!r}"
        )
    names = [feature.name for feature in record.features]
    value = document[given[0]]
    if given[0] == "dataframe_split":
        return _split_instances(value, names)
    if given[0] == "dataframe_records":
        return _row_instances(value, names, given[0])
    if isinstance(value, dict):
        return _column_instances(value, given[0])
    return _row_instances(value, names, given[0])


def _split_instances(value: Any, names: list[str]) -> list[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise MlflowError(
            "dataframe_split must be an object with 'data' (a list of rows) and "
            "'columns' (their names; without them, the model's features in order)"
        )
    columns = value.get("columns", names)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise MlflowError("dataframe_split.columns must be a list of column names")
    index = value.get("index")
    if index is not None and (
        not isinstance(index, list) or len(index) != len(value["data"])
    ):
        shown = len(index) if isinstance(index, list) else type(index).__name__
        raise MlflowError(
            f"dataframe_split.index must list one label per row of data "
            f"({len(value['data'])}); received {shown}"
        )
    instances = []
    for position, row in enumerate(value["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise MlflowError(
                f"dataframe_split.data[{position}] must be a list of "
                f"{len(columns)} values, one per column"
            )
        instances.append(dict(zip(columns, row, strict=True)))
    return instances


def _row_instances(value: Any, names: list[str], field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise MlflowError(f"{field} must be a list of rows")
    instances = []
    for position, row in enumerate(value):
        if isinstance(row, dict):
            instances.append(row)
        elif isinstance(row, list) and len(row) == len(names):
            instances.append(dict(zip(names, row, strict=True)))
        elif not isinstance(row, (list, dict)) and len(names) == 1:
            instances.append({names[0]: row})
        else:
            raise MlflowError(
                f"{field}[{position}] must be an object of column values, or a list "
                f"of {len(names)} values in the order of the model's features "
                f"{names!r}",
                "INVALID_PARAMETER_VALUE",
            )
    return instances


def _column_instances(value: dict[str, Any], field: str) -> list[dict[str, Any]]:
    columns = {
        name: cells if isinstance(cells, list) else [cells]
        for name, cells in value.items()
    }
    lengths = {len(cells) for cells in columns.values()}
    if len(lengths) > 1:
        raise MlflowError(
            f"{field}: every column must hold as many values; received "
            f"lengths {sorted(lengths)!r}"
        )
    count = lengths.pop() if lengths else 0
    return [{name: cells[i] for name, cells in columns.items()} for i in range(count)]


def _csv_instances(body: bytes, settings: Settings) -> list[dict[str, Any]]:
    """The rows of a CSV body, read as an upload is, every row complete.

    The comma, the ``.`` decimal and UTF-8 are fixed, as MLflow reads CSV;
    infinite numbers and rows with more or fewer fields than the header are
    refused, naming the line.
    """
    try:
        table = parse_csv(
            body,
            delimiter=",",
            decimal=".",
            encoding="utf-8",
            max_rows=settings.max_predict_instances,
            max_columns=settings.max_csv_columns,
            min_columns=1,
            full_rows=True,
        )
    except PayloadTooLarge as error:
        raise MlflowError(
            f"the CSV body: {error.message}; send smaller requests",
            "REQUEST_LIMIT_EXCEEDED",
            413,
        ) from error
    except InvalidInput as error:
        raise MlflowError(f"the CSV body: {error.message}") from error
    frame = table.frame
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{str(name): _plain(cell) for name, cell in row.items()} for row in records]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
