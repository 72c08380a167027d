"""Models, their versions and champion, and predictions from the champion."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from services.gateway.batching import batcher_for
from services.gateway.champions import local_champions
from services.gateway.deps import clients, tenant
from services.gateway.predictions import ids_of, response, to_rows
from services.gateway.responses import SafeJSONResponse
from services.gateway.schemas import (
    ModelName,
    PredictRequest,
    VersionNumber,
    error_responses,
)
from shared.clients import Clients
from shared.errors import (
    ArtifactRejected,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from shared.registry import VersionRecord, cached_champion

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses=error_responses(401, 404, 409, 413, 422, 503, 504),
)


@router.get("", response_class=SafeJSONResponse)
def list_models(
    c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    models = []
    for name in c.registry.models(owner):
        champion = c.registry.champion(owner, name)
        numbers = c.registry.versions(owner, name)
        models.append(
            {
                "model": name,
                "champion": champion.version if champion else None,
                "versions": len(numbers),
                "latest_version": numbers[-1] if numbers else None,
            }
        )
    return {"models": models}


@router.get("/{model}", response_class=SafeJSONResponse)
def get_model(
    model: ModelName, c: Clients = Depends(clients), owner: str = Depends(tenant)
) -> dict[str, Any]:
    numbers = c.registry.require_model(owner, model)
    champion = c.registry.champion(owner, model)
    versions = [version_view(c, owner, model, number) for number in numbers]
    return {
        "model": model,
        "champion": champion.version if champion else None,
        "champion_since": champion.since if champion else None,
        "versions": versions,
    }


@router.get("/{model}/versions/{version}", response_class=SafeJSONResponse)
def get_version(
    model: ModelName,
    version: VersionNumber,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    return version_view(c, owner, model, version, full=True)


@router.post("/{model}/predict", response_class=SafeJSONResponse)
async def predict(
    model: ModelName,
    body: PredictRequest,
    c: Clients = Depends(clients),
    owner: str = Depends(tenant),
) -> dict[str, Any]:
    return await predict_answer(c, owner, model, body)


async def predict_answer(
    c: Clients, owner: str, model: str, body: PredictRequest
) -> dict[str, Any]:
    """The champion's predictions for ``body``, through the micro-batcher.

    Also called by the gateway's fast path (services/gateway/fast_predict.py).
    """
    limit = c.settings.max_predict_instances
    if len(body.instances) > limit:
        raise PayloadTooLarge(
            f"{len(body.instances)} instances exceed the limit of {limit} per request; "
            "use smaller requests"
        )
    record = local_champions(c).get(owner, model)
    if record is None:
        record = await run_in_threadpool(champion_record, c, owner, model)
        local_champions(c).put(owner, model, record)
    rows = to_rows(record, body.instances)
    ids = ids_of(record, body.instances)
    try:
        answer = await batcher_for(c.settings).predict(
            owner, record, rows, body.explain
        )
    except ArtifactRejected as refusal:
        return await previous_champion_answer(c, owner, record, body, refusal)
    return response(record, answer, ids)


async def previous_champion_answer(
    c: Clients,
    owner: str,
    refused: VersionRecord,
    body: PredictRequest,
    refusal: ArtifactRejected,
) -> dict[str, Any]:
    """The answer of the champion before ``refused``, when serving refuses the
    champion's artifact (built with other library versions, or damaged).

    The answer names the version that served and says why in ``fallback``.
    Without a previous champion, or when the instances do not fit it, the
    refusal stands.
    """
    previous = await run_in_threadpool(previous_champion, c, owner, refused)
    if previous is None:
        raise refusal
    try:
        rows = to_rows(previous, body.instances)
    except InvalidInput:
        raise refusal from None
    answer = await batcher_for(c.settings).predict(owner, previous, rows, body.explain)
    log.warning(
        "gateway: %s v%d refused by serving; v%d answers instead: %s",
        refused.model,
        refused.version,
        previous.version,
        refusal.message,
    )
    served = response(previous, answer, ids_of(previous, body.instances))
    served["fallback"] = {
        "refused_version": refused.version,
        "reason": refusal.message,
    }
    return served


def previous_champion(
    c: Clients, owner: str, refused: VersionRecord
) -> VersionRecord | None:
    champion = cached_champion(c.connection, c.registry, owner, refused.model)
    if champion is None or champion.version != refused.version:
        return None
    if champion.previous is None:
        return None
    previous = _version_record(c, owner, refused.model, champion.previous)
    return None if previous.deleted_at is not None else previous


def champion_record(c: Clients, owner: str, model: str) -> VersionRecord:
    champion = cached_champion(c.connection, c.registry, owner, model)
    if champion is None:
        c.registry.require_model(owner, model)
        raise Conflict(
            f"model {model!r} has no champion yet: no version of it has been "
            "promoted, either because its first job has not finished or because "
            f"every version was rejected (see GET /v1/models/{model})"
        )
    return _version_record(c, owner, model, champion.version)


def version_view(
    c: Clients, owner: str, model: str, number: int, full: bool = False
) -> dict[str, Any]:
    try:
        record = c.registry.get_version(owner, model, number)
    except NotFound:
        c.registry.require_model(owner, model)
        raise
    report = c.registry.get_report(owner, model, number) or {}
    champion = c.registry.champion(owner, model)
    view = {
        **record.summary(),
        "champion": champion is not None and champion.version == number,
        "metrics": report.get("metrics"),
        "decision": report.get("decision"),
    }
    if full:
        view["evaluation"] = report or None
    return view


_VERSIONS: dict[tuple[str, str, int], VersionRecord] = {}
VERSION_CACHE_SIZE = 512


def _version_record(c: Clients, owner: str, model: str, number: int) -> VersionRecord:
    """A champion's record, kept by the gateway: what predict needs never changes."""
    key = (owner, model, number)
    if key not in _VERSIONS:
        try:
            record = c.registry.get_version(owner, model, number)
        except NotFound:
            c.registry.require_model(owner, model)
            raise
        if len(_VERSIONS) >= VERSION_CACHE_SIZE:
            _VERSIONS.pop(next(iter(_VERSIONS)))
        _VERSIONS[key] = record
    return _VERSIONS[key]
