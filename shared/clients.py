"""The one factory that builds the clients of a process from its settings.

Routes and tasks receive these objects instead of building boto3 or Redis
clients of their own, so tests can aim them at their own Redis and bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import redis

from shared.dataset_store import DatasetStore
from shared.jobs import JobStore
from shared.registry import Registry
from shared.settings import Settings, get_settings
from shared.storage import Storage

REDIS_SOCKET_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Clients:
    settings: Settings
    connection: redis.Redis
    storage: Storage
    datasets: DatasetStore
    jobs: JobStore
    registry: Registry


def build_clients(settings: Settings) -> Clients:
    storage = Storage.from_settings(settings)
    return Clients(
        settings=settings,
        connection=redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        ),
        storage=storage,
        datasets=DatasetStore(storage, settings.pseudonym_key),
        jobs=JobStore(storage),
        registry=Registry(storage),
    )


@lru_cache(maxsize=1)
def get_clients() -> Clients:
    """The clients of this process, built once from its settings."""
    return build_clients(get_settings())
