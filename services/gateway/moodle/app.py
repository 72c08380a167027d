"""The Moodle backend app: Moodle's eight routes at the root of their own port.

Run it with ``uvicorn services.gateway.moodle.app:app`` (``make up`` does,
on ``MOODLE_BACKEND_HOST:MOODLE_BACKEND_PORT``, when ``MOODLE_BACKEND_USERS``
is set). What Moodle expects of the HTTP layer, and this app does:

- ``GET /version`` needs no credentials and answers the bare version text;
  every other route needs HTTP Basic credentials of a configured user, sent
  without a challenge: a 401 has a plain-text body and no ``WWW-Authenticate``.
- Parameters come from the query string or the multipart form, either way.
  ``uniqueid``, ``dirhash`` and ``trainedmodeldirhash`` keep only letters,
  digits, ``_``, ``$`` and ``-``; ``minscore`` and ``maxdeviation`` only
  digits and ``.``; ``niterations`` and ``runid`` only digits. A missing
  parameter or file is a 400 with a plain-text reason.
- Model-level outcomes of ``/training``, ``/prediction`` and ``/evaluation``
  are HTTP 200 with an integer ``status`` (0 fine, 1 error, 2 not trained or
  no data, 4 low score, 8 not enough data), since Moodle treats any other
  HTTP status as a failure of the server itself.
- ``/export`` of an untrained model is a 503; ``/import`` and
  ``/deletemodel`` answer ``Ok``; a body over ``MAX_UPLOAD_BYTES`` is a 413
  in plain text.
- ``GET /healthz`` and ``GET /readyz``, the gateway's own probes (no
  credentials; ready while Redis and S3 answer), are there for containers.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.limits import BodyLimit
from services.gateway.moodle.backend import GENERAL_ERROR, Caller, MoodleBackend
from services.gateway.moodle.store import clean_id
from services.gateway.moodle.users import MoodleUser, Refused, authenticate, users_of
from services.gateway.responses import SafeJSONResponse
from services.gateway.routes import health
from shared.clients import get_clients
from shared.errors import NotFound, PlatformError
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.tenants import TenantStore

log = logging.getLogger(__name__)

MAX_FORM_FIELDS = 20
MAX_FORM_FILES = 2
NUMBER_MAX_CHARS = 30
_WHOLE = re.compile(rf"[0-9]{{1,{NUMBER_MAX_CHARS}}}")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class MissingParameter(Exception):
    """A parameter or file the route needs was not sent."""


class Params:
    """A request's parameters: its form (multipart or URL-encoded), then its query."""

    def __init__(self, request: Request, form: Any) -> None:
        self.query = request.query_params
        self.form = form

    def raw(self, name: str) -> Any:
        if self.form is not None and name in self.form:
            return self.form[name]
        return self.query.get(name)

    def optional_text(self, name: str) -> str | None:
        value = self.raw(name)
        if isinstance(value, UploadFile) or value is None or value == "":
            return None
        return str(value)

    def text(self, name: str) -> str:
        value = self.optional_text(name)
        if value is None:
            raise MissingParameter(f"missing parameter {name!r}")
        return value

    def identifier(self, name: str) -> str:
        return clean_id(self.text(name), name)

    def optional_identifier(self, name: str) -> str | None:
        value = self.optional_text(name)
        return None if value is None else clean_id(value, name)

    def number(self, name: str) -> float:
        text = self.text(name).strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or len(text) > NUMBER_MAX_CHARS:
            raise MissingParameter(
                f"parameter {name!r} must be a finite number; received {text[:40]!r}"
            )
        return value

    def whole(self, name: str) -> int:
        text = self.text(name).strip()
        if not _WHOLE.fullmatch(text):
            raise MissingParameter(
                f"parameter {name!r} must be a whole number of at most "
                f"{NUMBER_MAX_CHARS} digits; received {text[:40]!r}"
            )
        return int(text)

    async def file(self, name: str) -> bytes:
        value = self.raw(name)
        if not isinstance(value, UploadFile):
            raise MissingParameter(f"missing file {name!r} (a multipart file part)")
        return await value.read()


def create_app(settings: Settings) -> FastAPI:
    users = users_of(settings)
    api = FastAPI(
        title="eduml Moodle backend",
        version=settings.moodle_backend_version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    api.add_middleware(
        BodyLimit, limit_for=lambda _: settings.max_upload_bytes, refusal=_too_large
    )
    add_error_handlers(api)
    api.include_router(health.router)

    async def caller_of(request: Request) -> Caller:
        if not users:
            raise Refused("The Moodle backend is off: MOODLE_BACKEND_USERS is empty")
        user = authenticate(request.headers.get("authorization"), users)
        await run_in_threadpool(_check_tenant, settings, user)
        return Caller(user=user.name, tenant=user.tenant)

    async def params_of(request: Request) -> Params:
        # A form body counts on GET too: clients of Moodle's backend send the
        # parameters of /evaluationlog and /export that way.
        form = None
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith(FORM_TYPES):
            form = await request.form(
                max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS
            )
        return Params(request, form)

    def backend() -> MoodleBackend:
        return MoodleBackend(get_clients())

    @api.on_event("startup")
    def prepare() -> None:
        configure_logging(settings.log_level)
        if not users:
            log.warning(
                "moodle backend: MOODLE_BACKEND_USERS is empty; every request "
                "but /version is refused"
            )
        log.info("moodle backend: %d user(s) configured", len(users))

    @api.get("/version", response_class=PlainTextResponse)
    def version() -> str:
        return settings.moodle_backend_version

    @api.post("/training")
    async def training(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid, dirhash = p.identifier("uniqueid"), p.identifier("dirhash")
        data = await p.file("dataset")
        return await _status_json(backend().train, caller, uniqueid, dirhash, data)

    @api.post("/prediction")
    async def prediction(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid, dirhash = p.identifier("uniqueid"), p.identifier("dirhash")
        data = await p.file("dataset")
        return await _status_json(backend().predict, caller, uniqueid, dirhash, data)

    @api.post("/evaluation")
    async def evaluation(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid = p.identifier("uniqueid")
        min_score, max_deviation = p.number("minscore"), p.number("maxdeviation")
        iterations, dirhash = p.whole("niterations"), p.identifier("dirhash")
        data = await p.file("dataset")
        trained = p.optional_identifier("trainedmodeldirhash")
        return await _status_json(
            backend().evaluate,
            caller,
            uniqueid,
            dirhash,
            data,
            min_score,
            max_deviation,
            iterations,
            trained,
        )

    @api.get("/evaluationlog")
    async def evaluation_log(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid, dirhash = p.identifier("uniqueid"), p.identifier("dirhash")
        runid = p.whole("runid")
        data = await run_in_threadpool(
            backend().evaluation_log, caller, uniqueid, dirhash, runid
        )
        return _zip(data, "evaluationlog.zip")

    @api.get("/export")
    async def export(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid, dirhash = p.identifier("uniqueid"), p.identifier("dirhash")
        data = await run_in_threadpool(backend().export, caller, uniqueid, dirhash)
        if data is None:
            return PlainTextResponse(
                "There is nothing to export: the model has not been trained yet",
                status_code=503,
            )
        return _zip(data, "export.zip")

    @api.post("/import")
    async def import_model(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid, dirhash = p.identifier("uniqueid"), p.identifier("dirhash")
        data = await p.file("importzip")
        answer = await run_in_threadpool(
            backend().import_model, caller, uniqueid, dirhash, data
        )
        if answer["status"] != 0:
            message = "; ".join([*answer.get("info", []), answer.get("errors", "")])
            return PlainTextResponse(
                f"The import failed: {message.strip('; ')}", status_code=500
            )
        return PlainTextResponse("Ok")

    @api.post("/deletemodel")
    async def delete_model(request: Request) -> Response:
        caller = await caller_of(request)
        p = await params_of(request)
        uniqueid = p.identifier("uniqueid")
        await run_in_threadpool(backend().delete, caller, uniqueid)
        return PlainTextResponse("Ok")

    return api


async def _status_json(call: Callable[..., dict[str, Any]], *args: Any) -> Response:
    """Moodle's JSON answer; a platform error becomes status 1 with its reason."""
    try:
        answer = await run_in_threadpool(call, *args)
    except PlatformError as error:
        log.warning("moodle backend: %s", error.message)
        answer = {"status": GENERAL_ERROR, "info": [error.message]}
    return SafeJSONResponse(answer)


def _too_large(path: str, message: str) -> Response:
    """A 413 in plain text, as every error of this app."""
    return PlainTextResponse(message, status_code=413)


def _zip(data: bytes, name: str) -> Response:
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _check_tenant(settings: Settings, user: MoodleUser) -> None:
    """With authentication on, the user's tenant must exist."""
    if settings.admin_api_key is None:
        return
    try:
        TenantStore(get_clients().storage).get(user.tenant)
    except NotFound:
        raise Refused(
            f"Moodle backend user {user.name!r} belongs to tenant "
            f"{user.tenant!r}, which does not exist"
        ) from None


def add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> Response:
        return PlainTextResponse(str(error), status_code=401)

    @api.exception_handler(MissingParameter)
    async def missing(_: Request, error: MissingParameter) -> Response:
        return PlainTextResponse(str(error), status_code=400)

    @api.exception_handler(PlatformError)
    async def platform_error(_: Request, error: PlatformError) -> Response:
        status = 400 if error.status_code == 422 else error.status_code
        return PlainTextResponse(error.message, status_code=status)

    @api.exception_handler(StarletteHTTPException)
    async def framework_refusal(_: Request, error: StarletteHTTPException) -> Response:
        # An unknown path or a wrong method: plain text, as every answer here.
        return PlainTextResponse(
            str(error.detail),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> Response:
        log.exception("moodle backend: unexpected error")
        return PlainTextResponse(
            f"internal error: {type(error).__name__}", status_code=500
        )


app = create_app(get_settings())
