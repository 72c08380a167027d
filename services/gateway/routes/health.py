"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Depends

from services.gateway.deps import clients
from services.gateway.responses import SafeJSONResponse
from shared.clients import Clients
from shared.errors import PlatformError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(c: Clients = Depends(clients)) -> SafeJSONResponse:
    checks: dict[str, Any] = {"redis": "ok", "s3": "ok"}
    try:
        c.connection.ping()
    except redis.RedisError as error:
        checks["redis"] = f"unavailable at REDIS_URL: {error}"
    try:
        c.storage.check()
    except PlatformError as error:
        checks["s3"] = error.message
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "degraded", "checks": checks}
    return SafeJSONResponse(body, status_code=200 if ready else 503)
