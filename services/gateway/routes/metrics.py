"""``/metrics`` in Prometheus text format: the gateway's own request figures,
the workers' figures pushed through Redis, and queue, job and champion gauges
read at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from fastapi import APIRouter, Depends, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.deps import operator
from services.gateway.routes.queues import thresholds
from shared import keys
from shared.clients import get_clients
from shared.errors import PlatformError
from shared.metrics import LATENCY_BUCKETS_S, RedisMetrics, gauge
from shared.queues import queue_report

router = APIRouter(tags=["monitoring"])
registry = CollectorRegistry()
REQUESTS = Counter(
    "eduml_http_requests",
    "HTTP requests answered by the gateway.",
    ("method", "route", "status"),
    registry=registry,
)
LATENCY = Histogram(
    "eduml_http_request_seconds",
    "Gateway request latency.",
    ("method", "route"),
    buckets=LATENCY_BUCKETS_S,
    registry=registry,
)


class RequestMetrics:
    """Counts every answered request and its latency, by route template.

    A plain ASGI middleware: it only watches the status go by, without
    wrapping the request and response in objects of its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server sends when the app fails before answering

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)


def queue_gauges(connection: redis.Redis) -> Iterator[Any]:
    report = queue_report(connection, thresholds(get_clients()))
    rows = report["queues"]
    yield gauge(
        "eduml_queue_depth",
        "Messages waiting in a queue.",
        ("queue",),
        [([q["name"]], q["depth"]) for q in rows],
    )
    yield gauge(
        "eduml_queue_oldest_age_seconds",
        "Age of the oldest waiting message.",
        ("queue",),
        [([q["name"]], q["oldest_age_s"] or 0.0) for q in rows],
    )
    yield gauge(
        "eduml_queue_unacked",
        "Messages delivered and not yet acknowledged.",
        ("queue",),
        [([q["name"]], q["unacked"]) for q in rows],
    )
    yield gauge(
        "eduml_queue_consumers",
        "Live workers consuming a queue.",
        ("queue",),
        [([q["name"]], len(q["consumers"])) for q in rows],
    )
    yield gauge(
        "eduml_queue_critical",
        "1 when a queue's status is critical.",
        ("queue",),
        [([q["name"]], float(q["status"] == "critical")) for q in rows],
    )
    yield gauge(
        "eduml_worker_up",
        "1 while a worker's heartbeat is fresh.",
        ("worker",),
        [([w["name"]], float(w["alive"])) for w in report["workers"]],
    )


def champion_gauges(connection: redis.Redis) -> Iterator[Any]:
    champions = connection.hgetall(keys.CHAMPIONS_METRIC)
    yield gauge(
        "eduml_champion_version",
        "Version that serves each model.",
        ("tenant", "model"),
        [(keys.text(k).split("/", 1), float(v)) for k, v in champions.items()],
    )


def job_gauges(connection: redis.Redis) -> Iterator[Any]:
    c = get_clients()
    counts: dict[str, int] = {}
    try:
        for tenant, job_id in c.jobs.active():
            status = c.jobs.get(tenant, job_id).status.value
            counts[status] = counts.get(status, 0) + 1
    except PlatformError:
        return
    yield gauge(
        "eduml_jobs_unfinished",
        "Jobs not yet finished, by state.",
        ("status",),
        [([status], n) for status, n in sorted(counts.items())],
    )


registry.register(
    RedisMetrics(get_clients().connection, [queue_gauges, champion_gauges, job_gauges])
)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(operator)])
def metrics() -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
