"""Serving answers delivered to the caller waiting on them, without polling.

A caller sends a predict task with a reply address and a correlation id; the
serving task pushes ``{"id": correlation, "answer": ...}`` onto the address's
Redis list (which expires on its own), and the caller, blocked on that list
with BLPOP, wakes the moment it arrives. No result is stored in Celery's
result backend and nobody asks Redis again and again whether it is there.

Two kinds of caller:

- ``wait``: one blocking call for one answer, on an address of its own (the
  synchronous routes: Moodle, MLflow, V2);
- ``Inbox``: one address per gateway process and one listener on the event
  loop, handing each answer to the future of its correlation id (the
  micro-batched predict route, many batches in flight at once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import lru_cache
from typing import Any

import orjson
import redis
import redis.asyncio as aredis

from shared import keys

log = logging.getLogger(__name__)

REPLY_TTL_S = 60  # an answer nobody collects is gone after this long
LISTEN_TIMEOUT_S = 1.0  # the inbox's BLPOP wakes this often to notice a close
RECONNECT_PAUSE_S = 0.5


def new_address() -> str:
    return uuid.uuid4().hex


def push(
    connection: redis.Redis, address: str, correlation: str, answer: dict[str, Any]
) -> None:
    """Deliver ``answer`` to whoever waits on ``address``."""
    key = keys.reply(address)
    pipe = connection.pipeline(transaction=False)
    pipe.rpush(key, orjson.dumps({"id": correlation, "answer": answer}))
    pipe.expire(key, REPLY_TTL_S)
    pipe.execute()


def wait(redis_url: str, address: str, timeout_s: float) -> dict[str, Any] | None:
    """The answer pushed to ``address`` within ``timeout_s``, or None."""
    item = _blocking_client(redis_url).blpop([keys.reply(address)], timeout=timeout_s)
    if item is None:
        return None
    answer: dict[str, Any] = orjson.loads(item[1])["answer"]
    return answer


@lru_cache(maxsize=4)
def _blocking_client(redis_url: str) -> redis.Redis:
    # Its own pool: a wait holds a connection for up to its timeout, which
    # may exceed the socket timeout of the process's other connections.
    return redis.Redis.from_url(redis_url, socket_connect_timeout=5.0)


class Inbox:
    """The reply address of one process, and the futures waiting on it."""

    def __init__(self, redis_url: str) -> None:
        self.address = new_address()
        self._connection = aredis.Redis.from_url(redis_url, socket_connect_timeout=5.0)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    def expect(self, correlation: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the answer of ``correlation``; listens from the first call."""
        loop = asyncio.get_running_loop()
        if self._closing:
            raise RuntimeError("the reply inbox is closed")
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(self._listen())
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting[correlation] = future
        return future

    def forget(self, correlation: str) -> None:
        """Stop waiting for ``correlation`` (its caller gave up)."""
        self._waiting.pop(correlation, None)

    async def close(self) -> None:
        """Stop listening and release the connection.

        The listener is asked to stop and ends at its next wake-up, within
        ``LISTEN_TIMEOUT_S``; it is not cancelled, because a cancellation that
        lands while redis-py is between two commands on the connection can
        leave the task waiting for a reply that never comes (seen with
        redis-py 8.2).
        """
        self._closing = True
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            try:
                await asyncio.wait_for(asyncio.shield(listener), LISTEN_TIMEOUT_S + 2.0)
            except TimeoutError:
                listener.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        await self._connection.aclose()

    async def _listen(self) -> None:
        key = keys.reply(self.address)
        warned = False
        while not self._closing:
            try:
                item = await self._connection.blpop([key], timeout=LISTEN_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as error:
                if not warned:
                    log.warning("gateway: reply listener lost Redis: %s", error)
                    warned = True
                await asyncio.sleep(RECONNECT_PAUSE_S)
                continue
            warned = False
            if item is None:
                continue
            self._deliver(item[1])

    def _deliver(self, raw: bytes | str) -> None:
        reply = orjson.loads(raw)
        future = self._waiting.pop(reply["id"], None)
        if future is not None and not future.done():
            future.set_result(reply["answer"])
