"""Keyed pseudonyms for student identifiers.

A student's raw id is replaced at ingestion by an HMAC-SHA256 of it, keyed
per tenant, so the same student gets the same pseudonym within a tenant and
nobody without the key can reverse or link it across tenants.
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_HEX_CHARS = 20


def tenant_key(secret: str, tenant: str) -> bytes:
    """The per-tenant key derived from the platform's pseudonym secret."""
    return hmac.new(
        secret.encode(), f"tenant:{tenant}".encode(), hashlib.sha256
    ).digest()


def pseudonym(key: bytes, raw_id: str) -> str:
    digest = hmac.new(key, raw_id.strip().encode(), hashlib.sha256).hexdigest()
    return "p" + digest[:PSEUDONYM_HEX_CHARS]
