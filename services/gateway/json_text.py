"""JSON bodies holding a lone UTF-16 surrogate escape are refused up front.

JSON text may write ``"\\ud800"``, but no Unicode text holds a lone surrogate,
and Python's json module reads one into a string that cannot be encoded as
UTF-8. Such a string fails much later: when the answer is written, when a
task is sent to a queue or when a record is stored, after the request may
already have changed something. So the body of a JSON request is checked as
it arrives, before any route reads it: only a body whose bytes hold a
surrogate escape (``\\uD800``–``\\uDFFF``) is read again by orjson, which
refuses lone surrogates and accepts pairs. A refused body gets ``refusal``'s
answer, in the error shape of the route's protocol; the application is told
the client went away, as ``limits.BodyLimit`` does for bodies too large.
"""

from __future__ import annotations

import re

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.limits import DISCONNECT, Refusal, send_answer

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(body: bytes) -> str | None:
    """Why ``body`` is refused, or None when it holds no lone surrogate.

    Other faults of the JSON are left to the route, which words them itself.
    """
    if not SURROGATE_ESCAPE.search(body):
        return None
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "surrogate" in str(error):
            return (
                f"the JSON body holds a lone UTF-16 surrogate escape ({error}); "
                "text must be valid Unicode: a \\uD800-\\uDBFF escape followed by "
                "a \\uDC00-\\uDFFF one, or neither"
            )
    return None


class JsonText:
    def __init__(self, app: ASGIApp, refusal: Refusal) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        refused = False

        async def checking_receive() -> Message:
            nonlocal refused
            if refused:
                return DISCONNECT
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return message
            problem = lone_surrogate(b"".join(chunks))
            if problem is None:
                return message
            refused = True
            await send_answer(send, self.refusal(scope["path"], problem))
            return DISCONNECT

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, checking_receive, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False
