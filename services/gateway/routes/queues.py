"""Queue depth and the workers consuming each queue."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Depends

from services.gateway.deps import clients
from shared.clients import Clients
from shared.errors import DependencyUnavailable
from shared.queues import queue_report

router = APIRouter(prefix="/v1", tags=["queues"])


@router.get("/queues")
def list_queues(c: Clients = Depends(clients)) -> dict[str, Any]:
    try:
        return queue_report(c.connection)
    except redis.RedisError as error:
        raise DependencyUnavailable(f"Redis is unavailable at REDIS_URL: {error}") from error
