"""Micro-batching: concurrent predict requests for one version go as one task.

Each request is validated on its own first (``to_rows``), so a bad request is
refused alone. Valid requests for the same (tenant, model, version, explain)
then join a pending batch. A batch is sent to the serving queue at once when
fewer than ``predict_batch_max_in_flight`` batches of its key are already out
(a lone request waits for nothing), otherwise when the batch reaches
``predict_batch_max_rows`` rows, when a batch of its key comes back, or when
``predict_batch_window_ms`` has passed since its first request and at most
one batch beyond ``predict_batch_max_in_flight`` is out. The answer is
cut back into one slice per request. Should a whole batch fail, each of its
requests is tried again alone, so one request that serving cannot score
fails only itself.

Everything here runs on the gateway's event loop. Publishing a batch's task
runs on a small thread pool (kombu blocks); its answer comes back through the
process's reply inbox (shared/replies.py), with no thread waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.exceptions import OperationalError

from services.gateway.predictions import checked, send_prediction, timed_out
from shared.errors import DependencyUnavailable, PlatformError
from shared.registry import VersionRecord
from shared.replies import Inbox
from shared.settings import Settings

log = logging.getLogger(__name__)

BatchKey = tuple[str, str, int, bool]
SLICED = ("predictions", "probabilities", "explanations")


@dataclass
class Request:
    rows: list[list[Any]]
    future: asyncio.Future[dict[str, Any]]


@dataclass
class Batch:
    tenant: str
    record: VersionRecord
    explain: bool
    requests: list[Request] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """The pending and in-flight batches of one gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.window_s = settings.predict_batch_window_ms / 1000.0
        self.max_rows = settings.predict_batch_max_rows
        self.max_in_flight = settings.predict_batch_max_in_flight
        self.timeout_s = settings.predict_timeout_s
        self._pending: dict[BatchKey, Batch] = {}
        self._in_flight: dict[BatchKey, int] = {}
        self._senders = ThreadPoolExecutor(
            max_workers=settings.predict_batch_threads,
            thread_name_prefix="predict-send",
        )
        self.inbox = Inbox(settings.redis_url)

    async def predict(
        self,
        tenant: str,
        record: VersionRecord,
        rows: list[list[Any]],
        explain: bool = False,
    ) -> dict[str, Any]:
        """The serving answer for ``rows`` alone, as ``run_prediction`` gives it."""
        key = (tenant, record.model, record.version, explain)
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        batch = self._pending.get(key)
        if batch is not None and batch.rows + len(rows) > self.max_rows:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._pending[key] = Batch(tenant, record, explain)
        batch.requests.append(Request(rows, future))
        batch.rows += len(rows)
        if (
            batch.rows >= self.max_rows
            or self._in_flight.get(key, 0) < self.max_in_flight
        ):
            self._flush(key)
        elif batch.timer is None:
            batch.timer = asyncio.get_running_loop().call_later(
                self.window_s, self._window_ended, key
            )
        return await future

    async def close(self) -> None:
        """Stop listening for answers and let the sending threads end."""
        await self.inbox.close()
        self._senders.shutdown(wait=False)

    def _window_ended(self, key: BatchKey) -> None:
        """Send the batch, unless one more of its key already waits in the queue.

        Sending more batches than serving can start only splits them up; the
        batch then grows until one comes back (``_send`` flushes it) or
        another window ends.
        """
        batch = self._pending.get(key)
        if batch is None:
            return
        if self._in_flight.get(key, 0) > self.max_in_flight:
            batch.timer = asyncio.get_running_loop().call_later(
                self.window_s, self._window_ended, key
            )
            return
        self._flush(key)

    def _flush(self, key: BatchKey) -> None:
        batch = self._pending.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        asyncio.get_running_loop().create_task(self._send(key, batch))

    async def _send(self, key: BatchKey, batch: Batch) -> None:
        try:
            answers = await self._answers(batch)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
            if key in self._pending:
                self._flush(key)
        for request, answer in zip(batch.requests, answers, strict=True):
            if request.future.done():  # the caller went away
                continue
            if isinstance(answer, BaseException):
                request.future.set_exception(answer)
            else:
                request.future.set_result(answer)

    async def _answers(self, batch: Batch) -> Sequence[dict[str, Any] | BaseException]:
        """One answer or one error per request of the batch."""
        rows = [row for request in batch.requests for row in request.rows]
        try:
            answer = await self._run(batch, rows)
        except PlatformError as error:
            if len(batch.requests) == 1:
                return [error]
            log.warning(
                "gateway: batch of %d requests for %s v%d failed (%s); "
                "retrying each alone",
                len(batch.requests),
                batch.record.model,
                batch.record.version,
                error.code,
            )
            return list(
                await asyncio.gather(
                    *(self._run(batch, request.rows) for request in batch.requests),
                    return_exceptions=True,
                )
            )
        except Exception as error:  # noqa: BLE001 - each caller gets its own copy
            return [error] * len(batch.requests)
        return split(answer, [len(request.rows) for request in batch.requests])

    async def _run(self, batch: Batch, rows: list[list[Any]]) -> dict[str, Any]:
        """Send one task for ``rows`` and await its answer in the inbox."""
        correlation = uuid.uuid4().hex
        answer = self.inbox.expect(correlation)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._senders,
                send_prediction,
                batch.tenant,
                batch.record,
                rows,
                self.timeout_s,
                batch.explain,
                self.inbox.address,
                correlation,
            )
            return checked(await asyncio.wait_for(answer, self.timeout_s))
        except TimeoutError as error:
            raise timed_out(batch.record, self.timeout_s) from error
        except (redis.RedisError, OperationalError) as error:
            raise DependencyUnavailable(
                f"the serving queue is unavailable at REDIS_URL: {error}"
            ) from error
        finally:
            self.inbox.forget(correlation)


def split(answer: dict[str, Any], sizes: list[int]) -> list[dict[str, Any]]:
    """The answer for a batch cut into one answer per request, in order."""
    parts = []
    start = 0
    for size in sizes:
        part = dict(answer)
        for name in SLICED:
            if answer.get(name) is not None:
                part[name] = answer[name][start : start + size]
        parts.append(part)
        start += size
    return parts


_BATCHERS: dict[tuple[int, int], Batcher] = {}


async def close_batchers() -> None:
    """Close the batchers of the running event loop (the gateway shutting down)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _BATCHERS if key[1] == loop_id]:
        await _BATCHERS.pop(key).close()


def batcher_for(settings: Settings) -> Batcher:
    """The batcher of this process and event loop (one per settings object)."""
    key = (id(settings), id(asyncio.get_running_loop()))
    if key not in _BATCHERS:
        _BATCHERS[key] = Batcher(settings)
    return _BATCHERS[key]
