"""Tenants and their API keys, kept in S3.

A tenant is one LMS installation. Its record, ``tenants/<tenant>/tenant.json``,
holds its name and, for each API key, a key id, the SHA-256 of the key and
when it was created and revoked. A raw key exists only in the answer that
issues it: it is never stored or logged. One index object per key,
``auth/keys/<sha256>.json``, names the key's tenant and key id, so checking
a request costs two reads, not a scan of every tenant.

A key is accepted only while both agree: the index names the tenant, and the
tenant's record lists the key as not revoked. Accepted keys are remembered
in the process for ``cache_ttl_s`` seconds. Revoking a key forgets it in the
process that revokes it at once; any other process (another gateway) keeps
accepting it until its remembered entry expires, so a revocation takes
effect everywhere within ``cache_ttl_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from shared import keys
from shared.errors import Conflict, InvalidInput, NotFound, Unauthorized
from shared.jobs import now_iso
from shared.storage import Storage

log = logging.getLogger(__name__)

API_KEY_PREFIX = "eduml_"
API_KEY_RANDOM_BYTES = 32
API_KEY_MAX_CHARS = 200
TENANT_ID_PATTERN = re.compile(r"t[0-9a-f]{12}")
KEY_ID_PATTERN = re.compile(r"k[0-9a-f]{8}")
TENANT_NAME_MAX_CHARS = 200
CREATE_ATTEMPTS = 5
UPDATE_ATTEMPTS = 10
CACHE_MAX_ENTRIES = 10_000

MISSING_KEY = "missing bearer token: send the header 'Authorization: Bearer <API key>'"
UNKNOWN_KEY = "API key not recognised or revoked"


class ApiKey(BaseModel):
    """One API key of a tenant, as stored: its hash, never the key."""

    key_id: str
    sha256: str
    created_at: str = Field(default_factory=now_iso)
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class TenantRecord(BaseModel):
    id: str
    name: str
    created_at: str = Field(default_factory=now_iso)
    keys: list[ApiKey] = Field(default_factory=list)

    def key(self, key_id: str) -> ApiKey | None:
        return next((key for key in self.keys if key.key_id == key_id), None)

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it: key ids and dates, no hashes."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "keys": [key.public() for key in self.keys],
        }


@dataclass(frozen=True)
class IssuedKey:
    """A new API key; ``api_key`` is the only copy of it anywhere."""

    tenant: str
    key_id: str
    api_key: str = field(repr=False)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_tenant_id() -> str:
    return f"t{secrets.token_hex(6)}"


def new_key_id() -> str:
    return f"k{secrets.token_hex(4)}"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_RANDOM_BYTES)


class TenantStore:
    """Tenants, their keys, and which tenant a key belongs to."""

    def __init__(
        self,
        storage: Storage,
        cache_ttl_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self._accepted: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # --- tenants ------------------------------------------------------------

    def create(self, name: str) -> tuple[TenantRecord, IssuedKey]:
        """A new tenant with its first API key."""
        name = _checked_name(name)
        for _ in range(CREATE_ATTEMPTS):
            record = TenantRecord(id=new_tenant_id(), name=name)
            key = keys.tenant_record(record.id)
            try:
                self.storage.put_json(key, record.model_dump(), if_none_match=True)
            except Conflict:
                continue
            log.info("tenants: tenant %s created", record.id)
            issued = self.issue_key(record.id)
            return self.get(record.id), issued
        raise Conflict(f"no free tenant id after {CREATE_ATTEMPTS} attempts")

    def get(self, tenant: str) -> TenantRecord:
        return self._read(tenant)[0]

    def tenants(self) -> list[TenantRecord]:
        """Every tenant with a record; the default tenant of local use has none."""
        records = []
        for folder in self.storage.list_folders(keys.TENANTS_PREFIX):
            tenant = folder.rstrip("/").rsplit("/", 1)[-1]
            if not TENANT_ID_PATTERN.fullmatch(tenant):
                continue
            try:
                records.append(self.get(tenant))
            except NotFound:
                continue
        return records

    # --- keys ---------------------------------------------------------------

    def issue_key(self, tenant: str) -> IssuedKey:
        """A new API key for ``tenant``: its index first, then its record entry.

        A key authenticates only once both exist, so a failure in between
        leaves a key nobody was given and nobody can use.
        """
        taken = {key.key_id for key in self.get(tenant).keys}
        key_id = new_key_id()
        while key_id in taken:
            key_id = new_key_id()
        api_key = new_api_key()
        digest = hash_key(api_key)

        index = {"tenant": tenant, "key_id": key_id}
        self.storage.put_json(keys.api_key_index(digest), index, if_none_match=True)
        entry = ApiKey(key_id=key_id, sha256=digest)
        self._update(tenant, lambda current: current.keys.append(entry))

        log.info("tenants: tenant %s: API key %s issued", tenant, key_id)
        return IssuedKey(tenant=tenant, key_id=key_id, api_key=api_key)

    def revoke_key(self, tenant: str, key_id: str) -> None:
        """Revoke a key; revoking it again changes nothing."""
        record = self.get(tenant)
        key = record.key(key_id)
        if key is None:
            raise NotFound(
                f"tenant {tenant!r} has no API key {key_id!r}; its keys are "
                f"{[k.key_id for k in record.keys]!r}"
            )

        if key.active:
            self._update(tenant, lambda current: _revoke(current, key_id))
        self.storage.delete(keys.api_key_index(key.sha256))
        self._forget(key.sha256)

        log.info("tenants: tenant %s: API key %s revoked", tenant, key_id)

    def remembered(self, api_key: str) -> str | None:
        """The tenant of a key accepted a short while ago, without any I/O."""
        if not api_key.startswith(API_KEY_PREFIX) or len(api_key) > API_KEY_MAX_CHARS:
            return None
        return self._remembered(hash_key(api_key))

    def authenticate(self, api_key: str | None) -> str:
        """The tenant of an API key, or Unauthorized."""
        if not api_key:
            raise Unauthorized(MISSING_KEY)
        if not api_key.startswith(API_KEY_PREFIX) or len(api_key) > API_KEY_MAX_CHARS:
            raise Unauthorized(UNKNOWN_KEY)
        digest = hash_key(api_key)
        tenant = self._remembered(digest)
        if tenant is None:
            tenant = self._look_up(digest)
            self._remember(digest, tenant)
        return tenant

    def _look_up(self, digest: str) -> str:
        # Chained from None: the NotFound names the object, whose key holds
        # the key's hash; nothing about it belongs in a traceback.
        try:
            index, _ = self.storage.get_json(keys.api_key_index(digest))
            record = self.get(str(index.get("tenant")))
        except NotFound:
            raise Unauthorized(UNKNOWN_KEY) from None
        key = record.key(str(index.get("key_id")))
        if key is None or not key.active or not hmac.compare_digest(key.sha256, digest):
            raise Unauthorized(UNKNOWN_KEY)
        return record.id

    # --- the cache of accepted keys ----------------------------------------

    def _remembered(self, digest: str) -> str | None:
        with self._lock:
            entry = self._accepted.get(digest)
            if entry is None:
                return None
            tenant, expires = entry
            if expires <= self.clock():
                del self._accepted[digest]
                return None
            return tenant

    def _remember(self, digest: str, tenant: str) -> None:
        if self.cache_ttl_s <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._accepted) >= CACHE_MAX_ENTRIES:
                self._accepted = {
                    d: entry for d, entry in self._accepted.items() if entry[1] > now
                }
            if len(self._accepted) >= CACHE_MAX_ENTRIES:
                self._accepted.pop(next(iter(self._accepted)))
            self._accepted[digest] = (tenant, now + self.cache_ttl_s)

    def _forget(self, digest: str) -> None:
        with self._lock:
            self._accepted.pop(digest, None)

    # --- records ------------------------------------------------------------

    def _read(self, tenant: str) -> tuple[TenantRecord, str]:
        if not TENANT_ID_PATTERN.fullmatch(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        try:
            value, etag = self.storage.get_json(keys.tenant_record(tenant))
        except NotFound as error:
            raise NotFound(f"tenant {tenant!r} not found") from error
        return TenantRecord.model_validate(value), etag

    def _update(
        self, tenant: str, change: Callable[[TenantRecord], None]
    ) -> TenantRecord:
        """Apply ``change`` to the stored record, retrying lost races."""
        for _ in range(UPDATE_ATTEMPTS):
            record, etag = self._read(tenant)
            change(record)
            key = keys.tenant_record(tenant)
            try:
                self.storage.put_json(key, record.model_dump(), if_match=etag)
            except Conflict:
                continue
            return record
        raise Conflict(
            f"tenant {tenant}: record changed {UPDATE_ATTEMPTS} times during one update"
        )


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > TENANT_NAME_MAX_CHARS:
        raise InvalidInput(
            f"tenant name must have 1 to {TENANT_NAME_MAX_CHARS} characters besides "
            f"spaces; received {name!r}"
        )
    return name


def _revoke(record: TenantRecord, key_id: str) -> None:
    key = record.key(key_id)
    if key is not None and key.active:
        key.revoked_at = now_iso()
