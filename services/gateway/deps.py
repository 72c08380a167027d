"""Request dependencies: the process's clients, the caller's tenant, the admin.

With ``ADMIN_API_KEY`` set, every data route needs a tenant's API key in
``Authorization: Bearer <key>``, and the tenant routes need the admin key.
The admin key is not a tenant key: data routes refuse it (401), and tenant
routes refuse a tenant's key (401).

With ``ADMIN_API_KEY`` unset (local development only) authentication is off:
no header is checked, every request belongs to the default tenant, and the
tenant routes answer 404 saying so.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from shared.clients import Clients, get_clients
from shared.errors import NotFound, Unauthorized
from shared.tenants import MISSING_KEY, TenantStore, hash_key

bearer = HTTPBearer(
    auto_error=False,
    description="A tenant's API key; the admin key (ADMIN_API_KEY) for /v1/tenants.",
)

AUTHENTICATION_OFF = (
    "tenant management is unavailable: authentication is off because "
    "ADMIN_API_KEY is unset (local development only); set ADMIN_API_KEY to "
    "manage tenants"
)


async def clients() -> Clients:
    # Async, like ``tenant``: a dependency with no I/O costs no thread hop.
    return get_clients()


@lru_cache(maxsize=1)
def tenant_store() -> TenantStore:
    """The process's tenant store; it remembers accepted keys for a short time."""
    c = get_clients()
    return TenantStore(c.storage, cache_ttl_s=c.settings.api_key_cache_ttl_s)


async def tenant(
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> str:
    """The caller's tenant, from its API key; the default one when auth is off.

    A key accepted a short while ago is known without I/O; any other is looked
    up in S3 on a worker thread.
    """
    settings = get_clients().settings
    if settings.admin_api_key is None:
        return settings.default_tenant
    if credentials is not None and credentials.credentials:
        known = tenant_store().remembered(credentials.credentials)
        if known is not None:
            return known
    return await run_in_threadpool(tenant_of_credentials, credentials)


def tenant_of_credentials(credentials: HTTPAuthorizationCredentials | None) -> str:
    """``tenant``, for synchronous callers: it may read S3."""
    settings = get_clients().settings
    if settings.admin_api_key is None:
        return settings.default_tenant
    api_key = _bearer_token(credentials)
    if _same_secret(api_key, settings.admin_api_key):
        raise Unauthorized(
            "the admin API key only manages tenants (/v1/tenants); send a tenant's "
            "API key for data routes"
        )
    return tenant_store().authenticate(api_key)


def caller(
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> str:
    """Who is acting, for audit entries: a fingerprint of the key, never the key."""
    if get_clients().settings.admin_api_key is None or credentials is None:
        return "local user (authentication off)"
    return f"API key sha256:{hash_key(credentials.credentials)[:12]}"


def admin(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
    """Let only the holder of ADMIN_API_KEY through."""
    settings = get_clients().settings
    if settings.admin_api_key is None:
        raise NotFound(AUTHENTICATION_OFF)
    if not _same_secret(_bearer_token(credentials), settings.admin_api_key):
        raise Unauthorized(
            "this route needs the admin API key (ADMIN_API_KEY); the bearer token "
            "sent is not it"
        )


def operator(
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> None:
    """Let a monitoring scraper through: METRICS_TOKEN or ADMIN_API_KEY.

    Figures such as the champion of each tenant's models are nobody else's
    business once authentication is on; with it off, anyone local may read.
    """
    settings = get_clients().settings
    if settings.admin_api_key is None:
        return
    token = _bearer_token(credentials)
    accepted = [settings.admin_api_key, settings.metrics_token]
    if not any(secret and _same_secret(token, secret) for secret in accepted):
        raise Unauthorized(
            "/metrics needs METRICS_TOKEN or the admin API key (ADMIN_API_KEY) as "
            "its bearer token; the token sent is neither"
        )


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(MISSING_KEY)
    return credentials.credentials


def _same_secret(given: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses str with non-ASCII characters.
    return hmac.compare_digest(given.encode(), expected.encode())
