"""Registry operations on versions: cards, manual promotion, rollback, deletion.

Every change of champion leaves an audit entry: who, when, why.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.gateway import cards
from services.gateway.champions import local_champions
from services.gateway.deps import caller, clients, tenant
from services.gateway.responses import SafeJSONResponse
from services.gateway.schemas import ModelName, VersionNumber, error_responses
from shared.clients import Clients
from shared.errors import Conflict, NotFound
from shared.registry import announce_champion

router = APIRouter(
    prefix="/v1/models/{model}",
    tags=["versions"],
    responses=error_responses(401, 404, 409, 422, 503),
)


class ChampionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=500,
        description="Why the champion changes; kept in the audit log.",
    )


class Rollback(ChampionChange):
    to_version: int | None = Field(
        default=None,
        ge=1,
        description="Defaults to the champion before the current one.",
    )


@router.get("/versions/{version}/card", response_model=None)
def version_card(
    model: ModelName,
    version: VersionNumber,
    request: Request,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> Response:
    record = c.registry.get_version(owner, model, version)
    champion = c.registry.champion(owner, model)
    try:
        dataset = c.datasets.schema(owner, record.dataset_id)
    except NotFound:
        dataset = None
    history = [
        e for e in c.registry.audit_log(owner, model) if e.get("version") == version
    ]
    document = cards.card(
        record,
        c.registry.get_report(owner, model, version),
        dataset,
        history,
        champion.version if champion else None,
    )
    if "application/json" in request.headers.get("accept", ""):
        return SafeJSONResponse(document)
    return PlainTextResponse(cards.markdown(document), media_type="text/markdown")


@router.post("/versions/{version}/promote", response_class=SafeJSONResponse)
def promote(
    model: ModelName,
    version: VersionNumber,
    body: ChampionChange,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
    who: str = Depends(caller),
) -> dict[str, Any]:
    return change_champion(c, owner, model, version, body.reason, who, "promote")


@router.post("/rollback", response_class=SafeJSONResponse)
def rollback(
    model: ModelName,
    body: Rollback,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
    who: str = Depends(caller),
) -> dict[str, Any]:
    c.registry.require_model(owner, model)
    champion = c.registry.champion(owner, model)
    target = body.to_version or (champion.previous if champion else None)
    if target is None:
        raise Conflict(
            f"model {model!r} has no earlier champion to roll back to; "
            "name one with to_version"
        )
    return change_champion(c, owner, model, target, body.reason, who, "rollback")


@router.get("/audit", response_class=SafeJSONResponse)
def audit(
    model: ModelName, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    c.registry.require_model(owner, model)
    return {"model": model, "entries": c.registry.audit_log(owner, model)}


@router.delete("/versions/{version}", response_class=SafeJSONResponse)
def delete_version(
    model: ModelName,
    version: VersionNumber,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
    who: str = Depends(caller),
) -> dict[str, Any]:
    record = c.registry.delete_version(owner, model, version)
    c.registry.audit(owner, model, "delete", who, "version deleted", version=version)
    return {"model": model, "version": version, "deleted_at": record.deleted_at}


def change_champion(
    c: Clients, owner: str, model: str, version: int, reason: str, who: str, action: str
) -> dict[str, Any]:
    record = c.registry.get_version(owner, model, version)
    if record.deleted_at is not None:
        raise Conflict(f"{model} v{version} was deleted and cannot serve")
    current = c.registry.champion(owner, model)
    expected = current.version if current else None
    champion = c.registry.promote(
        owner, model, version, expected=expected, reason=reason
    )
    announce_champion(c.connection, owner, model, version)
    local_champions(c).forget(owner, model)
    c.registry.audit(
        owner, model, action, who, reason, version=version, previous=expected
    )
    return {
        "model": model,
        "champion": champion.version,
        "previous": expected,
        "since": champion.since,
    }
