"""Who is looking at the dashboard: a tenant's API key, from a header or a cookie.

A browser cannot send ``Authorization: Bearer`` by itself, so ``/ui/login``
takes the key in a form and keeps it in a cookie: HttpOnly (no script reads
it), SameSite=Strict (no other site's page sends it), Secure over HTTPS,
scoped to ``/ui``. Every page checks the key again exactly as the JSON API
does (``deps.tenant_of_credentials``, hence ``TenantStore.authenticate``), so
a revoked key stops working in the dashboard as soon as it does in the API. With
``ADMIN_API_KEY`` unset, authentication is off and every page shows the
default tenant without a login.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials

from services.gateway import deps
from shared.clients import get_clients
from shared.errors import Unauthorized
from shared.settings import Settings

COOKIE = "eduml_ui_key"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_S = 8 * 3600  # one working day; then log in again
EMPTY_KEY = "enter the API key your tenant was given (it starts with 'eduml_')"


def auth_on(settings: Settings) -> bool:
    return settings.admin_api_key is not None


def presented_key(request: Request) -> str | None:
    """The API key the request carries: a bearer header first, else the cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE) or None


def viewer(request: Request) -> str | None:
    """The tenant whose data the page shows, or None when a login is needed."""
    key = presented_key(request)
    return tenant_of(key) if key or not auth_on(get_clients().settings) else None


def tenant_of(key: str | None) -> str | None:
    """The tenant of ``key`` as the JSON API decides it; None if it is refused."""
    try:
        return tenant_or_refusal(key)
    except Unauthorized:
        return None


def tenant_or_refusal(key: str | None) -> str:
    """The tenant of ``key``, or Unauthorized saying why it is refused."""
    if not key and auth_on(get_clients().settings):
        raise Unauthorized(EMPTY_KEY)
    credentials = (
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=key) if key else None
    )
    return deps.tenant_of_credentials(credentials)


def secure_cookie(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.lower() == "https"
