"""Queue health: depth, oldest age, unacknowledged work, consumers, rates, status."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Depends

from services.gateway.deps import clients
from shared.clients import Clients
from shared.errors import DependencyUnavailable
from shared.queues import Thresholds, queue_report

router = APIRouter(prefix="/v1", tags=["queues"])


def thresholds(c: Clients) -> Thresholds:
    s = c.settings
    return Thresholds(
        s.queue_warning_age_s, s.queue_critical_age_s, s.queue_warning_depth
    )


@router.get("/queues")
def list_queues(c: Clients = Depends(clients)) -> dict[str, Any]:
    try:
        return queue_report(c.connection, thresholds(c))
    except redis.RedisError as error:
        raise DependencyUnavailable(
            f"Redis is unavailable at REDIS_URL: {error}"
        ) from error
