"""The gateway's own memory of each model's champion record, for predict.

Every predict names the champion's version, so reading the pointer is on the
path of every request. This process keeps the record it last read for up to
``CHAMPION_LOCAL_TTL_S`` and forgets it the moment a champion changes: the
evaluation worker and the promote and rollback routes announce each change
on a Redis channel (``shared.registry.announce_champion``), which a listener
on the event loop follows. Should that listener lose Redis, it forgets every
record once it is back, as announcements may have been missed meanwhile; the
time limit bounds how stale a record can get in between.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
import redis.asyncio as aredis

from shared import keys
from shared.clients import Clients
from shared.registry import VersionRecord

log = logging.getLogger(__name__)

RECONNECT_PAUSE_S = 0.5


class LocalChampions:
    def __init__(self, redis_url: str, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._redis_url = redis_url
        self._records: dict[tuple[str, str], tuple[VersionRecord, float]] = {}
        self._listener: asyncio.Task[None] | None = None

    def get(self, tenant: str, model: str) -> VersionRecord | None:
        self._listen()
        entry = self._records.get((tenant, model))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, tenant: str, model: str, record: VersionRecord) -> None:
        self._records[(tenant, model)] = (record, time.monotonic() + self.ttl_s)

    def forget(self, tenant: str, model: str) -> None:
        self._records.pop((tenant, model), None)

    def _listen(self) -> None:
        """Follow the announcements from the first read on this event loop."""
        if self._listener is not None and not self._listener.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller: nothing to follow with
            return
        self._listener = loop.create_task(self._follow())

    async def _follow(self) -> None:
        connection = aredis.Redis.from_url(self._redis_url, socket_connect_timeout=5.0)
        lost = False
        while True:
            try:
                async with connection.pubsub() as channel:
                    await channel.subscribe(keys.CHAMPION_CHANGES)
                    if lost:  # announcements may have gone by meanwhile
                        self._records.clear()
                        lost = False
                    async for message in channel.listen():
                        if message["type"] == "message":
                            self._announced(message["data"])
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as error:
                if not lost:
                    log.warning("gateway: champion announcements lost: %s", error)
                lost = True
                self._records.clear()
                await asyncio.sleep(RECONNECT_PAUSE_S)

    def _announced(self, data: bytes) -> None:
        tenant, _, model = data.decode().partition("/")
        self.forget(tenant, model)


_LOCAL: dict[int, LocalChampions] = {}


def local_champions(c: Clients) -> LocalChampions:
    """The champion records of this process (one per settings object)."""
    key = id(c.settings)
    if key not in _LOCAL:
        _LOCAL[key] = LocalChampions(
            c.settings.redis_url, c.settings.champion_local_ttl_s
        )
    return _LOCAL[key]
