"""Real parts for the tests: a Redis, a SeaweedFS, the gateway and the workers.

Each test session starts a private Redis server and a private SeaweedFS on
free ports of their own (unless TEST_REDIS_URL or TEST_S3_ENDPOINT_URL name
ones to use), so that two sessions never share a queue or a bucket. Each test gets
its own key prefix in the bucket; integration tests share one stack, whose
gateway runs with a random ADMIN_API_KEY, and each test works in a tenant of
its own, created for it, with its own model names.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from scripts import stack
from shared.settings import Settings
from shared.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DATA = ROOT / "data"
CASES = Path(__file__).resolve().parent / "data" / "cases"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        redis.Redis.from_url(given).flushdb()
        yield given
        return
    port = free_port()
    process = stack.start_redis(port, ARTIFACTS / "logs" / "redis.log")
    yield f"redis://127.0.0.1:{port}/0"
    stack.stop(process)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TEST_S3_ENDPOINT_URL")
    if given:
        yield given
        return
    ports = stack.SeaweedPorts.free()
    endpoint = f"http://127.0.0.1:{ports.s3}"
    settings = Settings(s3_endpoint_url=endpoint, s3_bucket="eduml-test")
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    process = stack.start_seaweed(
        data_dir, ports, settings, ARTIFACTS / "logs" / "seaweedfs.log"
    )
    yield endpoint
    stack.stop(process)


@pytest.fixture(scope="session")
def settings(redis_url: str, s3_endpoint: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        s3_endpoint_url=s3_endpoint,
        s3_bucket="eduml-test",
        s3_prefix=f"run-{uuid.uuid4().hex[:12]}",
        auto_budget_s=20.0,
        predict_timeout_s=20.0,
        admin_api_key=secrets.token_urlsafe(32),
        api_key_cache_ttl_s=1.0,
    )


@pytest.fixture
def storage(settings: Settings) -> Storage:
    """A storage under a key prefix of this test's own."""
    prefix = f"{settings.s3_prefix}/unit-{uuid.uuid4().hex[:12]}"
    store = Storage.from_settings(settings.model_copy(update={"s3_prefix": prefix}))
    store.ensure_bucket()
    return store


@pytest.fixture
def connection(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def stack_env(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "S3_BUCKET": settings.s3_bucket,
        "S3_PREFIX": settings.s3_prefix,
        "AUTO_BUDGET_S": str(settings.auto_budget_s),
        "PREDICT_TIMEOUT_S": str(settings.predict_timeout_s),
        "ADMIN_API_KEY": settings.admin_api_key or "",
        "API_KEY_CACHE_TTL_S": str(settings.api_key_cache_ttl_s),
    }


@pytest.fixture(scope="session")
def gateway_url(settings: Settings) -> Iterator[str]:
    """A real gateway (uvicorn) and one real Celery worker per queue."""
    env = stack_env(settings)
    logs = ARTIFACTS / "logs"
    port = free_port()
    processes = [
        stack.start_worker(
            queue, logs / f"worker-{queue}.log", env, name=f"test-{queue}"
        )
        for queue in stack.WORKERS
    ]
    processes.append(stack.start_gateway("127.0.0.1", port, logs / "gateway.log", env))
    base_url = f"http://127.0.0.1:{port}"
    stack.wait_for_consumers(base_url, list(stack.WORKERS))
    yield base_url
    for process in processes:
        stack.stop(process)


def client_with_key(gateway_url: str, api_key: str | None) -> httpx.Client:
    """A client of the test gateway that sends ``api_key`` as its bearer token."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=gateway_url, timeout=60, headers=headers)


@dataclass(frozen=True)
class TenantAccess:
    """A tenant made for a test: its id, its first key, and a client using it."""

    id: str
    key_id: str
    api_key: str
    client: httpx.Client


def create_tenant(gateway_url: str, admin: httpx.Client, name: str) -> TenantAccess:
    answer = admin.post("/v1/tenants", json={"name": name})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    client = client_with_key(gateway_url, body["api_key"])
    return TenantAccess(body["id"], body["key_id"], body["api_key"], client)


@pytest.fixture
def admin_api(gateway_url: str, settings: Settings) -> Iterator[httpx.Client]:
    """A client holding the admin key: it manages tenants, it has no data."""
    with client_with_key(gateway_url, settings.admin_api_key) as client:
        yield client


@pytest.fixture
def new_tenant(
    gateway_url: str, admin_api: httpx.Client, request: pytest.FixtureRequest
) -> Iterator[Callable[[], TenantAccess]]:
    """Makes tenants for this test; each call gives another one."""
    made: list[TenantAccess] = []

    def make() -> TenantAccess:
        access = create_tenant(gateway_url, admin_api, f"test {request.node.name}")
        made.append(access)
        return access

    yield make
    for access in made:
        access.client.close()


@pytest.fixture
def api(new_tenant: Callable[[], TenantAccess]) -> httpx.Client:
    """A client of a tenant of this test's own."""
    return new_tenant().client


@pytest.fixture
def model_name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"
