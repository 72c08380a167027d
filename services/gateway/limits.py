"""A body-size limit enforced while the body streams in, before it is buffered.

A declared Content-Length over the limit is refused at once. A chunked body
is counted as it arrives: the moment it passes the limit the 413 is sent and
the application is told the client went away, so it stops reading. Whatever
the application answers to that is dropped. (Raising from ``receive`` would
not do: FastAPI turns any error met while reading a body into a 400.)

The 413 itself comes from ``refusal``, given the path and a message, so that
each protocol served answers in its own error shape (the platform's
``{"error": {"code", "message"}}`` unless told otherwise).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.responses import SafeJSONResponse, error_body

DISCONNECT: Message = {"type": "http.disconnect"}
TOO_LARGE = 413

Refusal = Callable[[str, str], Response]


def platform_refusal(path: str, message: str) -> Response:
    """The platform's own 413: ``{"error": {"code": "payload_too_large", ...}}``."""
    return SafeJSONResponse(
        error_body("payload_too_large", message), status_code=TOO_LARGE
    )


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        refusal: Refusal = platform_refusal,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, limit = scope["path"], self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, path, limit, f"{declared} bytes declared")
            return
        received = 0
        started = over = refused = False

        async def counting_receive() -> Message:
            nonlocal received, over, refused
            if over:
                return DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    if not started:
                        refused = True
                        sent = f"more than {limit} bytes sent"
                        await self._refuse(send, path, limit, sent)
                    return DISCONNECT
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ClientDisconnect:
            if not refused:
                raise

    async def _refuse(self, send: Send, path: str, limit: int, received: str) -> None:
        message = (
            f"request body for {path} exceeds the limit of {limit} bytes ({received})"
        )
        answer = self.refusal(path, message)
        answer.status_code = TOO_LARGE
        await send_answer(send, answer, ((b"connection", b"close"),))


async def send_answer(
    send: Send, answer: Response, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Send a whole response from a middleware, past the application."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status_code,
            "headers": [*answer.raw_headers, *extra_headers],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
