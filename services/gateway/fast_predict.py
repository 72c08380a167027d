"""The predict route's fast path: the common request without the framework.

``POST /v1/models/{model}/predict`` is the one route an LMS calls many times
a second. For it, FastAPI's routing through every route, its dependency
solving and its middleware layers cost more gateway CPU than the prediction
itself. This ASGI middleware answers the common case directly: a well-formed
JSON body, a valid model name, and a caller known without I/O (authentication
off, or an API key accepted a short while ago). It runs the same code as the
FastAPI route (``routes.models.predict_answer``) and answers with the same
bodies, platform errors included.

Anything else, a malformed body, an unknown key, a body over the limit, goes
on to the FastAPI route untouched (the body read so far is handed on), so
every refusal is worded and documented in one place.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.deps import tenant_store
from services.gateway.responses import SafeJSONResponse, error_body, error_response
from services.gateway.routes import metrics
from services.gateway.routes.models import predict_answer
from services.gateway.schemas import MODEL_NAME_PATTERN, PredictRequest
from shared.clients import get_clients
from shared.errors import PlatformError, Unauthorized

log = logging.getLogger(__name__)

PATH = re.compile(r"^/v1/models/([^/]+)/predict$")
TEMPLATE = "/v1/models/{model}/predict"
MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
JSON_TYPES = (b"application/json",)
# orjson reads an integer beyond 64 bits as a float, which would turn a long
# student id into 1.18e+21; bodies with 20 or more digits in a row go to the
# FastAPI route, whose parser keeps such integers exact.
LONG_DIGITS = re.compile(rb"\d{20,}")
_REQUEST = TypeAdapter(PredictRequest)


class FastPredict:
    def __init__(self, app: ASGIApp, body_limit_bytes: int) -> None:
        self.app = app
        self.body_limit_bytes = body_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        matched = PATH.match(scope["path"])
        if matched is None or not MODEL_NAME.match(matched.group(1)):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received, body = await self._body(scope, receive)
        request = _parsed(scope, body) if body is not None else None
        owner = _known_caller(scope) if request is not None else None
        if request is None or owner is None:
            await self.app(scope, _replaying(received, receive), send)
            return
        status = await _answer(owner, matched.group(1), request, scope, send)
        metrics.REQUESTS.labels("POST", TEMPLATE, str(status)).inc()
        metrics.LATENCY.labels("POST", TEMPLATE).observe(time.perf_counter() - started)

    async def _body(
        self, scope: Scope, receive: Receive
    ) -> tuple[list[Message], bytes | None]:
        """The messages read, and the whole body when it came within the limit."""
        declared = _content_length(scope)
        if declared is not None and declared > self.body_limit_bytes:
            return [], None
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return received, None
            size += len(message.get("body", b""))
            if size > self.body_limit_bytes:
                return received, None
            if not message.get("more_body", False):
                return received, b"".join(m.get("body", b"") for m in received)


def _parsed(scope: Scope, body: bytes) -> PredictRequest | None:
    """The request, when it is JSON that reads as one; None leaves it to FastAPI."""
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return None  # FastAPI decides what a body without a type is
    if content_type.split(b";")[0].strip().lower() not in JSON_TYPES:
        return None
    if LONG_DIGITS.search(body):
        return None
    try:
        return _REQUEST.validate_python(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _known_caller(scope: Scope) -> str | None:
    """The caller's tenant when it is known without I/O; None otherwise."""
    settings = get_clients().settings
    if settings.admin_api_key is None:
        return settings.default_tenant
    authorization = _header(scope, b"authorization")
    if authorization is None:
        return None
    scheme, _, key = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return None
    return tenant_store().remembered(key.strip())


async def _answer(
    owner: str, model: str, request: PredictRequest, scope: Scope, send: Send
) -> int:
    try:
        body: Any = await predict_answer(get_clients(), owner, model, request)
        response = SafeJSONResponse(body)
    except PlatformError as error:
        response = error_response(error)
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = "Bearer"
    except Exception as error:  # noqa: BLE001 - answered like the app's own handler
        log.exception("gateway: unexpected error")
        response = SafeJSONResponse(
            error_body("internal_error", f"internal error: {type(error).__name__}"),
            status_code=500,
        )
    await response(scope, _no_receive, send)
    return response.status_code


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: the messages read first."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
