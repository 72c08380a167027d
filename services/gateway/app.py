"""The gateway: the platform's HTTP API (FastAPI), in front of the queues.

Run it with ``uvicorn services.gateway.app:app``. Work never runs here: the
gateway checks requests, writes job records and sends tasks to the queues.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway import ui
from services.gateway.batching import close_batchers
from services.gateway.fast_predict import FastPredict
from services.gateway.json_text import JsonText
from services.gateway.limits import BodyLimit, platform_refusal
from services.gateway.responses import SafeJSONResponse, error_body, error_response
from services.gateway.routes import (
    batch,
    datasets,
    health,
    jobs,
    metrics,
    mlflow,
    models,
    policy,
    queues,
    tenants,
    v2,
    versions,
)
from shared import task_signals
from shared.clients import get_clients
from shared.errors import PlatformError, Unauthorized
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

JSON_BODY_LIMIT_BYTES = 10 * 1024 * 1024
HTTP_ERROR_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed"}
BODY_NOT_READ = "the body is not valid JSON, or nests too deeply to be read"


def create_app(settings: Settings) -> FastAPI:
    api = FastAPI(
        title="eduml gateway",
        version="0.1.0",
        description="Train, evaluate, promote and serve student-outcome models.",
        default_response_class=SafeJSONResponse,
    )
    for module in (health, datasets, jobs, models, versions, policy, queues, tenants):
        api.include_router(module.router)
    api.include_router(batch.router)
    api.include_router(batch.downloads)
    api.include_router(metrics.router)
    api.include_router(ui.router)
    api.include_router(mlflow.router)
    api.include_router(v2.router)
    add_error_handlers(api)
    api.add_middleware(metrics.RequestMetrics)
    api.add_middleware(JsonText, refusal=not_unicode)
    api.add_middleware(BodyLimit, limit_for=body_limit(settings), refusal=too_large)
    # Outermost: the common predict request is answered before any other layer.
    api.add_middleware(FastPredict, body_limit_bytes=JSON_BODY_LIMIT_BYTES)
    task_signals.connect()

    @api.on_event("startup")
    def prepare() -> None:
        configure_logging(settings.log_level, settings.log_format)
        if settings.admin_api_key is None:
            log.warning(
                "gateway: authentication is off: ADMIN_API_KEY is unset; every "
                "request belongs to tenant %r — local development only",
                settings.default_tenant,
            )
        try:
            get_clients().storage.ensure_bucket()
        except PlatformError as error:
            log.error("gateway: storage is not ready: %s", error.message)

    @api.on_event("shutdown")
    async def release() -> None:
        await close_batchers()

    return api


def body_limit(settings: Settings):  # type: ignore[no-untyped-def]
    def limit_for(path: str) -> int:
        if path.rstrip("/") == "/v1/datasets":
            return settings.max_upload_bytes
        return JSON_BODY_LIMIT_BYTES

    return limit_for


def too_large(path: str, message: str) -> Response:
    """A 413 in the error shape of the protocol that ``path`` belongs to."""
    for protocol in (mlflow, v2):
        if protocol.serves(path):
            return protocol.too_large(path, message)
    return platform_refusal(path, message)


def not_unicode(path: str, message: str) -> Response:
    """A JSON body that is not Unicode text, refused in its protocol's shape."""
    if mlflow.serves(path):
        return mlflow.MlflowError(message).response()
    if v2.serves(path):
        return SafeJSONResponse({"error": message}, status_code=400)
    return SafeJSONResponse(error_body("invalid_input", message), status_code=422)


def _problem(item: dict[str, Any]) -> dict[str, Any]:
    """One of FastAPI's validation errors in the platform's words."""
    where = ".".join(str(part) for part in item["loc"])
    if item.get("type") == "json_invalid":
        # FastAPI places a JSON syntax error at ("body", <character offset>).
        offset = item["loc"][-1]
        reason = (item.get("ctx") or {}).get("error", "invalid JSON")
        return {
            "where": "body",
            "problem": f"the body is not valid JSON: {reason} at character {offset}",
            "received": None,
        }
    return {"where": where, "problem": item["msg"], "received": item.get("input")}


def add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(PlatformError)
    async def platform_error(_: Request, error: PlatformError) -> SafeJSONResponse:
        response = error_response(error)
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(RequestValidationError)
    async def invalid_request(
        _: Request, error: RequestValidationError
    ) -> SafeJSONResponse:
        problems = [_problem(item) for item in error.errors()]
        first = problems[0] if problems else {"where": "body", "problem": "invalid"}
        message = f"{first['where']}: {first['problem']}"
        body = error_body("invalid_input", message, problems=problems)
        return SafeJSONResponse(body, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def framework_refusal(
        _: Request, error: StarletteHTTPException
    ) -> SafeJSONResponse:
        # Raised by FastAPI itself (the routes raise PlatformError): an unknown
        # path, a wrong method, or a 400 for a body it could not parse.
        code = HTTP_ERROR_CODES.get(error.status_code, "http_error")
        message = BODY_NOT_READ if error.status_code == 400 else str(error.detail)
        return SafeJSONResponse(
            error_body(code, message),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> SafeJSONResponse:
        log.exception("gateway: unexpected error")
        body = error_body("internal_error", f"internal error: {type(error).__name__}")
        return SafeJSONResponse(body, status_code=500)


app = create_app(get_settings())
