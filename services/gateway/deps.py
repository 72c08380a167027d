"""Request dependencies: the process's clients and the caller's tenant."""

from __future__ import annotations

from shared.clients import Clients, get_clients


def clients() -> Clients:
    return get_clients()


def tenant() -> str:
    """The caller's tenant. Until API keys exist, everything is the default tenant."""
    return get_clients().settings.default_tenant
