"""The caller's data policy: protected attributes that may never be features."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from services.gateway.deps import clients, tenant
from services.gateway.responses import SafeJSONResponse
from services.gateway.schemas import error_responses
from shared.clients import Clients
from shared.policy import Policy, get_policy, put_policy

router = APIRouter(
    prefix="/v1/policy", tags=["policy"], responses=error_responses(401, 422, 503)
)


@router.get("", response_class=SafeJSONResponse)
def read_policy(
    c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    return get_policy(c.storage, owner).model_dump()


@router.put("", response_class=SafeJSONResponse)
def write_policy(
    body: Policy, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    return put_policy(c.storage, owner, body).model_dump()
