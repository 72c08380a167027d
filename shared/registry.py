"""The model registry: versions and the champion pointer, kept in S3.

A version number is taken by writing its record with "only if new", so two
trainings of one model never get the same number. The champion pointer is
changed with "only if unchanged since I read it", so two promotions at once
leave exactly one champion and the loser gets a Conflict.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import redis
from pydantic import BaseModel, Field

from shared import keys
from shared.errors import Conflict, DependencyUnavailable, NotFound
from shared.jobs import new_job_id, now_iso
from shared.storage import Storage

log = logging.getLogger(__name__)

ALLOCATE_ATTEMPTS = 20
IDEMPOTENCY_LOOKBACK = 10
# A promotion deletes the cached pointer; the expiry bounds staleness when
# that delete could not reach Redis.
CHAMPION_CACHE_TTL_S = 30
CHAMPION_GAUGE_TTL_S = 7 * 24 * 3600


class FeatureSpec(BaseModel):
    name: str
    type: str


class ArtifactRef(BaseModel):
    key: str
    sha256: str
    bytes: int


class VersionRecord(BaseModel):
    """Everything needed to load, explain and reproduce one trained version."""

    tenant: str
    model: str
    version: int = 0
    job_id: str
    dataset_id: str
    task: str
    target: str
    features: list[FeatureSpec]
    id_column: str | None = None
    algorithm: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int
    classes: list[Any] | None = None
    has_proba: bool = False
    artifact: ArtifactRef
    libraries: dict[str, str]
    fit_seconds: float
    rows: dict[str, int]
    test_rows: list[int]
    selection: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None
    class_weight: str | None = None
    group_split_column: str | None = None
    reference: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=now_iso)
    deleted_at: str | None = None
    erasures: list[dict[str, Any]] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"test_rows"})


class Champion(BaseModel):
    version: int
    since: str = Field(default_factory=now_iso)
    reason: str = ""
    previous: int | None = None


class Registry:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # --- versions -----------------------------------------------------------

    def register(self, tenant: str, record: VersionRecord) -> int:
        """Give ``record`` the next version number; the same job gets the same one."""
        existing = self._version_of_job(tenant, record.model, record.job_id)
        if existing is not None:
            return existing
        for _ in range(ALLOCATE_ATTEMPTS):
            number = (self.latest_version(tenant, record.model) or 0) + 1
            record.version = number
            key = keys.version_record(tenant, record.model, number)
            try:
                self.storage.put_json(
                    key, record.model_dump(mode="json"), if_none_match=True
                )
            except Conflict:
                continue
            log.info("registry: %s/%s v%d registered", tenant, record.model, number)
            return number
        raise Conflict(f"model {record.model!r}: no free version number after retries")

    def versions(self, tenant: str, model: str) -> list[int]:
        folders = self.storage.list_folders(keys.versions_prefix(tenant, model))
        return sorted(keys.version_from_prefix(folder) for folder in folders)

    def latest_version(self, tenant: str, model: str) -> int | None:
        numbers = self.versions(tenant, model)
        return numbers[-1] if numbers else None

    def get_version(self, tenant: str, model: str, version: int) -> VersionRecord:
        try:
            value, _ = self.storage.get_json(
                keys.version_record(tenant, model, version)
            )
        except NotFound as error:
            raise NotFound(f"model {model!r} has no version {version}") from error
        return VersionRecord.model_validate(value)

    def models(self, tenant: str) -> list[str]:
        folders = self.storage.list_folders(keys.models_prefix(tenant))
        return sorted(folder.rstrip("/").rsplit("/", 1)[-1] for folder in folders)

    def require_model(self, tenant: str, model: str) -> list[int]:
        numbers = self.versions(tenant, model)
        if not numbers:
            raise NotFound(f"model {model!r} not found")
        return numbers

    def delete_version(self, tenant: str, model: str, version: int) -> VersionRecord:
        """Remove a version's artifact and report; its record stays as a tombstone.

        The champion is never deleted, and the number is never given again.
        """
        champion = self.champion(tenant, model)
        if champion is not None and champion.version == version:
            raise Conflict(
                f"{model} v{version} is the champion and serves predictions — "
                "promote another version or roll back first"
            )
        record = self.get_version(tenant, model, version)
        if record.deleted_at is None:
            self.storage.delete(record.artifact.key)
            self.storage.delete(keys.version_report(tenant, model, version))
            self.update_version(tenant, model, version, _mark_deleted)
        return self.get_version(tenant, model, version)

    def update_version(
        self,
        tenant: str,
        model: str,
        version: int,
        change: Callable[[VersionRecord], None],
    ) -> VersionRecord:
        """Apply ``change`` to a version's record with a conditional write."""
        key = keys.version_record(tenant, model, version)
        for _ in range(ALLOCATE_ATTEMPTS):
            value, etag = self.storage.get_json(key)
            record = VersionRecord.model_validate(value)
            change(record)
            try:
                self.storage.put_json(
                    key, record.model_dump(mode="json"), if_match=etag
                )
            except Conflict:
                continue
            return record
        raise Conflict(f"{model} v{version}: record kept changing while being updated")

    def versions_of_dataset(self, tenant: str, dataset_id: str) -> list[VersionRecord]:
        found = []
        for model in self.models(tenant):
            for number in self.versions(tenant, model):
                record = self.get_version(tenant, model, number)
                if record.dataset_id == dataset_id:
                    found.append(record)
        return found

    # --- audit ----------------------------------------------------------------

    def audit(
        self,
        tenant: str,
        model: str,
        action: str,
        actor: str,
        reason: str,
        **details: Any,
    ) -> dict[str, Any]:
        """Record who changed the model's champion, when and why; append-only."""
        entry = {
            "action": action,
            "actor": actor,
            "reason": reason,
            "at": now_iso(),
            **details,
        }
        entry_id = new_job_id()
        self.storage.put_json(
            keys.audit_entry(tenant, model, entry_id), entry, if_none_match=True
        )
        log.info("registry: %s/%s %s by %s", tenant, model, action, actor)
        return entry

    def audit_log(self, tenant: str, model: str) -> list[dict[str, Any]]:
        entries = []
        for key in self.storage.list_keys(keys.audit_prefix(tenant, model)):
            value, _ = self.storage.get_json(key)
            entries.append(value)
        return entries

    # --- reports ------------------------------------------------------------

    def save_report(
        self, tenant: str, model: str, version: int, report: dict[str, Any]
    ) -> None:
        self.storage.put_json(
            keys.version_report(tenant, model, version), finite(report)
        )

    def get_report(
        self, tenant: str, model: str, version: int
    ) -> dict[str, Any] | None:
        try:
            value, _ = self.storage.get_json(
                keys.version_report(tenant, model, version)
            )
        except NotFound:
            return None
        return dict(value)

    # --- champion -----------------------------------------------------------

    def champion(self, tenant: str, model: str) -> Champion | None:
        return self._champion(tenant, model)[0]

    def promote(
        self,
        tenant: str,
        model: str,
        version: int,
        *,
        expected: int | None,
        reason: str,
    ) -> Champion:
        """Make ``version`` the champion if the champion is still ``expected``."""
        current, etag = self._champion(tenant, model)
        current_version = current.version if current else None
        if current_version != expected:
            raise Conflict(
                f"model {model!r}: champion is v{current_version}, expected "
                f"v{expected}; v{version} must be evaluated against the new champion"
            )
        champion = Champion(version=version, reason=reason, previous=current_version)
        key = keys.champion(tenant, model)
        value = champion.model_dump(mode="json")
        if etag is None:
            self.storage.put_json(key, value, if_none_match=True)
        else:
            self.storage.put_json(key, value, if_match=etag)
        log.info("registry: %s/%s champion is now v%d", tenant, model, version)
        return champion

    def _champion(self, tenant: str, model: str) -> tuple[Champion | None, str | None]:
        try:
            value, etag = self.storage.get_json(keys.champion(tenant, model))
        except NotFound:
            return None, None
        return Champion.model_validate(value), etag

    def _version_of_job(self, tenant: str, model: str, job_id: str) -> int | None:
        for number in reversed(self.versions(tenant, model)[-IDEMPOTENCY_LOOKBACK:]):
            if self.get_version(tenant, model, number).job_id == job_id:
                return number
        return None


def cached_champion(
    connection: redis.Redis, registry: Registry, tenant: str, model: str
) -> Champion | None:
    """The champion, read through a short-lived Redis cache of the S3 pointer."""
    key = keys.champion_cache(tenant, model)
    try:
        cached = connection.get(key)
    except redis.RedisError:
        cached = None
    if cached:
        return Champion.model_validate_json(cached)
    try:
        champion = registry.champion(tenant, model)
    except DependencyUnavailable:
        if (tenant, model) not in _LAST_KNOWN:
            raise
        log.warning(
            "registry: S3 unavailable; %s/%s served by its last known champion",
            tenant,
            model,
        )
        return _LAST_KNOWN[(tenant, model)]
    if champion is not None:
        _LAST_KNOWN[(tenant, model)] = champion
    if champion is not None:
        try:
            connection.set(key, champion.model_dump_json(), ex=CHAMPION_CACHE_TTL_S)
        except redis.RedisError:
            log.warning(
                "registry: could not cache the champion of %s/%s", tenant, model
            )
    return champion


def finite(value: Any) -> Any:
    """The same document with NaN and infinities replaced by None, numpy made plain."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mark_deleted(record: VersionRecord) -> None:
    record.deleted_at = now_iso()


# The last champion each process read, to keep serving while S3 is away.
_LAST_KNOWN: dict[tuple[str, str], Champion] = {}


def announce_champion(
    connection: redis.Redis, tenant: str, model: str, version: int
) -> None:
    """Drop the cached pointer so the next reader sees the new champion, tell
    the gateways (which keep their own copy), and record the version for the
    champion gauge of ``/metrics``."""
    try:
        pipe = connection.pipeline(transaction=False)
        pipe.delete(keys.champion_cache(tenant, model))
        pipe.publish(keys.CHAMPION_CHANGES, f"{tenant}/{model}")
        pipe.hset(keys.CHAMPIONS_METRIC, f"{tenant}/{model}", version)
        pipe.expire(keys.CHAMPIONS_METRIC, CHAMPION_GAUGE_TTL_S)
        pipe.execute()
    except redis.RedisError:
        log.warning(
            "registry: cached champion of %s/%s expires on its own", tenant, model
        )
