"""JSON responses that never fail on numbers: NaN and infinities become null."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

from shared.errors import PlatformError


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(error: PlatformError) -> SafeJSONResponse:
    return SafeJSONResponse(error_body(error.code, error.message), status_code=error.status_code)
