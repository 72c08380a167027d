"""JSON responses that never fail on their content.

NaN and infinities become null (orjson writes them so). What orjson refuses
outright, an integer beyond 64 bits or nesting deeper than it recurses, can
only come from a request echoed back (a value quoted in an error, an id
returned with predictions): such a body is written again with those integers
as strings and the deep part cut off.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

from shared.errors import PlatformError

OPTIONS = orjson.OPT_SERIALIZE_NUMPY
INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson writes as a JSON integer
MAX_DEPTH = 64  # levels of a body kept when it has to be written again
CUT = "..."


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=OPTIONS, default=str)
        except orjson.JSONEncodeError:
            return orjson.dumps(encodable(content), option=OPTIONS, default=str)


def encodable(value: Any, depth: int = 0) -> Any:
    """``value`` with what orjson refuses replaced: big integers, deep nesting."""
    if depth >= MAX_DEPTH:
        return CUT
    if isinstance(value, dict):
        return {str(key): encodable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(item, depth + 1) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = INT_RANGE
        return value if low <= value <= high else str(value)
    return value


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(error: PlatformError) -> SafeJSONResponse:
    return SafeJSONResponse(
        error_body(error.code, error.message), status_code=error.status_code
    )
