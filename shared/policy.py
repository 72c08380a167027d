"""A tenant's data policy: the protected attributes that may never be features.

Kept in S3 beside the tenant's data. An empty list (the default) refuses
nothing; a school board lists, say, ``["gender", "ethnicity"]`` and every
job naming one of them as a feature is refused with the reason.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.errors import NotFound
from shared.jobs import Gates
from shared.storage import Storage


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protected_attributes: list[str] = Field(default_factory=list, max_length=200)


def get_policy(storage: Storage, tenant: str) -> Policy:
    try:
        value, _ = storage.get_json(keys.tenant_policy(tenant))
    except NotFound:
        return Policy()
    return Policy.model_validate(value)


def put_policy(storage: Storage, tenant: str, policy: Policy) -> Policy:
    storage.put_json(keys.tenant_policy(tenant), policy.model_dump())
    return policy


def model_gates(storage: Storage, tenant: str, model: str) -> Gates | None:
    """The gates stored on a model by an earlier job, if any."""
    try:
        value, _ = storage.get_json(keys.model_gates(tenant, model))
    except NotFound:
        return None
    return Gates.model_validate(value)


def keep_model_gates(storage: Storage, tenant: str, model: str, gates: Gates) -> None:
    storage.put_json(keys.model_gates(tenant, model), gates.model_dump())
