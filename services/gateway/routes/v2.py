"""The Open Inference Protocol (V2, as KServe, Triton and MLServer speak it).

- ``GET /v2/health/live`` and ``GET /v2/health/ready`` need no key: 200 when
  live, when Redis and S3 answer; else 400 (the protocol's "4xx is false").
- ``GET /v2``: the server's metadata.
- ``GET /v2/models/{model}[/versions/{version}]``: the model's metadata, its
  versions, one input per feature and the outputs.
- ``GET .../ready``: 200 when the model has a champion (a version: when it is
  not deleted), else 400; a version that never existed is a 404.
- ``POST .../infer``: predictions of the champion, or of the version.

An inference request is tabular: with ``"parameters": {"content_type": "pd"}``
(MLServer's pandas codec) each input tensor is one column, named after the
feature, with one value per student (shape ``[n]`` or ``[n, 1]``). Without
it, inputs named after every feature are read the same way, and a single
input of shape ``[n, k]`` is read as rows of the ``k`` features in the
model's order. The answer has the output ``predict`` (shape ``[n]``) and,
when asked for in ``outputs``, ``predict_proba`` (shape ``[n, classes]``).
Errors are ``{"error": "<message>"}`` with a 4xx status (5xx when Redis, S3
or the serving workers fail). Model routes need the tenant's API key, as
``/v1`` does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.gateway.batching import batcher_for
from services.gateway.deps import clients, tenant
from services.gateway.predictions import to_rows
from services.gateway.responses import SafeJSONResponse
from services.gateway.routes.models import champion_record
from services.gateway.schemas import ModelName, VersionNumber
from shared.clients import Clients
from shared.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PlatformError,
)
from shared.registry import VersionRecord

SERVER_NAME = "eduml"
SERVER_VERSION = "0.1.0"
PLATFORM = "sklearn"
PANDAS = "pd"
PREDICT, PREDICT_PROBA = "predict", "predict_proba"
NUMERIC_TYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
DATATYPES = NUMERIC_TYPES | {"BYTES"}


class V2ErrorBody(BaseModel):
    error: str


class NotReadyBody(BaseModel):
    """``{"name", "ready": false}``, or ``{"error"}`` for a request not understood."""

    name: str | None = None
    ready: bool | None = None
    error: str | None = None


NOT_READY: dict[int | str, dict[str, Any]] = {
    400: {"model": NotReadyBody, "description": "Not ready, or a bad request."}
}


class RequestInput(BaseModel):
    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class V2Route(APIRoute):
    """Every error of the route, authentication included, as ``{"error": ...}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PlatformError as error:
                status = 400 if error.status_code == 422 else error.status_code
                response = _error(error.message, status)
                if status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
                return response
            except RequestValidationError as error:
                return _error(_first_problem(error.errors()), 400)

        return route


def _error(message: str, status: int) -> SafeJSONResponse:
    return SafeJSONResponse({"error": message}, status_code=status)


def serves(path: str) -> bool:
    """Whether ``path`` is one of this protocol's routes (under ``/v2``)."""
    return path == "/v2" or path.startswith("/v2/")


def too_large(path: str, message: str) -> Response:
    """A body over the gateway's limit (services/gateway/limits.py), as V2 says it."""
    return _error(message, 413)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": V2ErrorBody, "description": meaning}
    for status, meaning in {
        400: "A request the model cannot use; or, for ready, not ready.",
        401: "No API key, or one that is not valid.",
        404: "Unknown model or version.",
        409: "A deleted version.",
        413: "More instances than one request may carry.",
        503: "Redis or S3 does not answer.",
        504: "No serving worker answered in time.",
    }.items()
}

router = APIRouter(
    prefix="/v2", tags=["open inference (v2)"], route_class=V2Route, responses=ERRORS
)


@router.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", response_class=SafeJSONResponse, responses=NOT_READY)
def ready(c: Clients = Depends(clients)) -> SafeJSONResponse:
    try:
        c.connection.ping()
        c.storage.check()
    except (redis.RedisError, PlatformError):
        return SafeJSONResponse({"ready": False}, status_code=400)
    return SafeJSONResponse({"ready": True})


@router.get("")
def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []}


@router.get("/models/{model}", response_class=SafeJSONResponse)
def model_metadata(
    model: ModelName, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    record = champion_record(c, owner, model)
    return _metadata(record, _versions(c, owner, model))


@router.get("/models/{model}/versions/{version}", response_class=SafeJSONResponse)
def version_metadata(
    model: ModelName,
    version: VersionNumber,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    return _metadata(_version(c, owner, model, version), [str(version)])


@router.get(
    "/models/{model}/ready", response_class=SafeJSONResponse, responses=NOT_READY
)
def model_ready(
    model: ModelName, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> SafeJSONResponse:
    c.registry.require_model(owner, model)
    ready = c.registry.champion(owner, model) is not None
    return SafeJSONResponse(
        {"name": model, "ready": ready}, status_code=200 if ready else 400
    )


@router.get(
    "/models/{model}/versions/{version}/ready",
    response_class=SafeJSONResponse,
    responses=NOT_READY,
)
def version_ready(
    model: ModelName,
    version: VersionNumber,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> SafeJSONResponse:
    try:
        _version(c, owner, model, version)
    except Conflict:
        return SafeJSONResponse({"name": model, "ready": False}, status_code=400)
    return SafeJSONResponse({"name": model, "ready": True})


def _inlined(schema: Any, definitions: dict[str, Any] | None = None) -> Any:
    """A JSON schema with its ``$defs`` references written in place."""
    if definitions is None:
        definitions = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    if isinstance(schema, dict):
        reference = schema.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.rsplit("/", 1)[-1]], definitions)
        return {
            key: _inlined(value, definitions)
            for key, value in schema.items()
            if key != "$defs"
        }
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema


INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _inlined(InferenceRequest.model_json_schema())
            }
        },
    }
}


@router.post(
    "/models/{model}/infer", response_class=SafeJSONResponse, openapi_extra=INFER_BODY
)
async def infer(
    model: ModelName,
    request: Request,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    body = _inference_request(await request.body())
    record = await run_in_threadpool(champion_record, c, owner, model)
    return await _infer(c, owner, record, body)


@router.post(
    "/models/{model}/versions/{version}/infer",
    response_class=SafeJSONResponse,
    openapi_extra=INFER_BODY,
)
async def infer_version(
    model: ModelName,
    version: VersionNumber,
    request: Request,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    body = _inference_request(await request.body())
    record = await run_in_threadpool(_version, c, owner, model, version)
    return await _infer(c, owner, record, body)


# --- helpers -------------------------------------------------------------------


def _version(c: Clients, owner: str, model: str, version: int) -> VersionRecord:
    try:
        record = c.registry.get_version(owner, model, version)
    except NotFound:
        c.registry.require_model(owner, model)
        raise
    if record.deleted_at is not None:
        raise Conflict(f"{model} v{version} was deleted at {record.deleted_at}")
    return record


def _versions(c: Clients, owner: str, model: str) -> list[str]:
    return [str(number) for number in c.registry.versions(owner, model)]


def _metadata(record: VersionRecord, versions: list[str]) -> dict[str, Any]:
    inputs = [
        {
            "name": feature.name,
            "shape": [-1],
            "datatype": "FP64" if feature.type == "numeric" else "BYTES",
        }
        for feature in record.features
    ]
    kind = _datatype(record.classes) if record.classes is not None else "FP64"
    outputs = [{"name": PREDICT, "shape": [-1], "datatype": kind}]
    if record.has_proba and record.classes is not None:
        outputs.append(
            {
                "name": PREDICT_PROBA,
                "shape": [-1, len(record.classes)],
                "datatype": "FP64",
            }
        )
    return {
        "name": record.model,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "content_type": PANDAS,
            "version": str(record.version),
            "task": record.task,
            "classes": record.classes,
        },
    }


def _inference_request(body: bytes) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise InvalidInput(
            "the body's JSON nests arrays or objects too deeply"
        ) from error
    except ValidationError as error:
        raise InvalidInput(_first_problem(error.errors())) from error


async def _infer(
    c: Clients, owner: str, record: VersionRecord, body: InferenceRequest
) -> dict[str, Any]:
    wanted = [output.name for output in body.outputs or []] or [PREDICT]
    unknown = [name for name in wanted if name not in (PREDICT, PREDICT_PROBA)]
    if unknown or (PREDICT_PROBA in wanted and not record.has_proba):
        offered = [PREDICT, PREDICT_PROBA] if record.has_proba else [PREDICT]
        raise InvalidInput(
            f"outputs {wanted!r}: {record.model} v{record.version} offers {offered!r}"
        )
    instances = _instances(record, body)
    if not instances:
        raise InvalidInput("the inputs hold no rows to predict")
    limit = c.settings.max_predict_instances
    if len(instances) > limit:
        raise PayloadTooLarge(
            f"{len(instances)} instances exceed the limit of {limit} "
            "per request; send smaller requests"
        )
    rows = to_rows(record, instances)
    answer = await batcher_for(c.settings).predict(owner, record, rows)
    return _response(record, body, answer, wanted)


def _instances(record: VersionRecord, body: InferenceRequest) -> list[dict[str, Any]]:
    names = [feature.name for feature in record.features]
    for tensor in body.inputs:
        if tensor.datatype not in DATATYPES:
            raise InvalidInput(
                f"input {tensor.name!r}: datatype must be one of "
                f"{sorted(DATATYPES)!r}; received {tensor.datatype!r}"
            )
    given = Counter(tensor.name for tensor in body.inputs)
    twice = sorted(name for name, count in given.items() if count > 1)
    if twice:
        raise InvalidInput(
            f"inputs name each tensor once; {twice!r} are given more than once"
        )
    pandas = (body.parameters or {}).get("content_type") == PANDAS
    named = {tensor.name for tensor in body.inputs} >= set(names)
    if pandas or named:
        return _columns(body.inputs)
    if len(body.inputs) == 1 and len(body.inputs[0].shape) == 2:
        return _rows(body.inputs[0], names)
    raise InvalidInput(
        f"inputs must be one tensor per feature ({names!r}) with parameters "
        "{'content_type': 'pd'}, or one tensor of shape [n, "
        f"{len(names)}]; received inputs {[t.name for t in body.inputs]!r}"
    )


def _columns(inputs: list[RequestInput]) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        values = _flat(tensor.data)
        if tensor.shape[0] != len(values) or any(
            size != 1 for size in tensor.shape[1:]
        ):
            raise InvalidInput(
                f"input {tensor.name!r}: a column has shape [n] or [n, 1] "
                f"holding n values; received shape {tensor.shape} with "
                f"{len(values)} values"
            )
        columns[tensor.name] = values
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        raise InvalidInput(
            f"every input column must hold as many values; received {sorted(counts)!r}"
        )
    count = counts.pop()
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _rows(tensor: RequestInput, names: list[str]) -> list[dict[str, Any]]:
    values = _flat(tensor.data)
    count, width = tensor.shape
    if width != len(names) or count * width != len(values):
        raise InvalidInput(
            f"input {tensor.name!r}: shape [n, {len(names)}] with n*"
            f"{len(names)} values expected; received shape {tensor.shape} "
            f"with {len(values)} values"
        )
    return [
        dict(zip(names, values[i * width : (i + 1) * width], strict=True))
        for i in range(count)
    ]


def _flat(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_flat(item))
        else:
            flat.append(item)
    return flat


def _response(
    record: VersionRecord,
    body: InferenceRequest,
    answer: dict[str, Any],
    wanted: list[str],
) -> dict[str, Any]:
    predictions = answer["predictions"]
    outputs = []
    if PREDICT in wanted:
        outputs.append(
            {
                "name": PREDICT,
                "shape": [len(predictions)],
                "datatype": _datatype(predictions),
                "data": predictions,
            }
        )
    if PREDICT_PROBA in wanted:
        rows = answer.get("probabilities") or []
        width = len(record.classes or [])
        outputs.append(
            {
                "name": PREDICT_PROBA,
                "shape": [len(rows), width],
                "datatype": "FP64",
                "data": [p for row in rows for p in row],
                "parameters": {"classes": record.classes},
            }
        )
    response: dict[str, Any] = {
        "model_name": record.model,
        "model_version": str(record.version),
        "outputs": outputs,
    }
    if body.id is not None:
        response["id"] = body.id
    return response


def _datatype(values: list[Any] | None) -> str:
    present = [value for value in values or [] if value is not None]
    if present and all(isinstance(value, bool) for value in present):
        return "BOOL"
    if present and all(
        isinstance(value, int) and not isinstance(value, bool) for value in present
    ):
        return "INT64"
    if present and all(isinstance(value, (int, float)) for value in present):
        return "FP64"
    return "BYTES"


def _first_problem(errors: Any) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
    return f"{where}: {first.get('msg', 'invalid request')}"
