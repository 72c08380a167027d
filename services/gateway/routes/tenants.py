"""Tenants and their API keys; every route here needs the admin key.

A raw API key appears in exactly one answer, the one that issues it, marked
``Cache-Control: no-store``; afterwards only its key id is ever shown.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.deps import admin, tenant_store
from services.gateway.responses import SafeJSONResponse
from shared.tenants import TENANT_NAME_MAX_CHARS, IssuedKey, TenantStore

router = APIRouter(
    prefix="/v1/tenants", tags=["tenants"], dependencies=[Depends(admin)]
)

SHOWN_ONCE = {"Cache-Control": "no-store"}


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1,
        max_length=TENANT_NAME_MAX_CHARS,
        description="Who the tenant is, e.g. 'Moodle of Example School'.",
    )


@router.post("", status_code=201, response_class=SafeJSONResponse)
def create_tenant(
    body: TenantCreate, store: TenantStore = Depends(tenant_store)
) -> SafeJSONResponse:
    record, issued = store.create(body.name)
    answer = {"id": record.id, "name": record.name, **_shown_once(issued)}
    headers = {**SHOWN_ONCE, "Location": f"/v1/tenants/{record.id}"}
    return SafeJSONResponse(answer, status_code=201, headers=headers)


@router.get("", response_class=SafeJSONResponse)
def list_tenants(store: TenantStore = Depends(tenant_store)) -> dict[str, Any]:
    return {"tenants": [record.public() for record in store.tenants()]}


@router.get("/{tenant}", response_class=SafeJSONResponse)
def get_tenant(
    tenant: str, store: TenantStore = Depends(tenant_store)
) -> dict[str, Any]:
    return store.get(tenant).public()


@router.post("/{tenant}/keys", status_code=201, response_class=SafeJSONResponse)
def issue_key(
    tenant: str, store: TenantStore = Depends(tenant_store)
) -> SafeJSONResponse:
    issued = store.issue_key(tenant)
    answer = {"tenant": issued.tenant, **_shown_once(issued)}
    return SafeJSONResponse(answer, status_code=201, headers=SHOWN_ONCE)


@router.delete("/{tenant}/keys/{key_id}", status_code=204)
def revoke_key(
    tenant: str, key_id: str, store: TenantStore = Depends(tenant_store)
) -> Response:
    store.revoke_key(tenant, key_id)
    return Response(status_code=204)


def _shown_once(issued: IssuedKey) -> dict[str, str]:
    return {"key_id": issued.key_id, "api_key": issued.api_key}
