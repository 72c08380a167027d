"""A private stack per test module, whose parts the fault tests kill and restart.

It has its own Redis (so it can be restarted), its own SeaweedFS (so it can
be taken away), a gateway and one worker per queue, all real processes. The
lease, grace and reaper intervals are shortened so that a lost worker is
noticed in seconds rather than a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts import stack
from shared.settings import Settings
from tests.conftest import ARTIFACTS, free_port

FAST_RECOVERY = {
    "LEASE_TTL_S": "4",
    "ORPHAN_GRACE_S": "2",
    "REAPER_INTERVAL_S": "1",
    "DEPENDENCY_BACKOFF_S": "1",
    "DEPENDENCY_RETRIES": "2",
    "S3_MAX_ATTEMPTS": "1",
    "S3_CONNECT_TIMEOUT_S": "1",
    "S3_READ_TIMEOUT_S": "5",
    "PREDICT_TIMEOUT_S": "3",
    # Each training and evaluation step waits this long first, so that a
    # test can kill its worker in the middle of it.
    "STEP_DELAY_S": "5",
}


class PrivateStack:
    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.logs = logs
        self.redis_port = free_port()
        self.ports = stack.SeaweedPorts.free()
        self.settings = Settings(
            redis_url=f"redis://127.0.0.1:{self.redis_port}/0",
            s3_endpoint_url=f"http://127.0.0.1:{self.ports.s3}",
            s3_bucket="eduml-faults",
            s3_prefix=f"faults-{os.urandom(4).hex()}",
        )
        self.gateway_port = free_port()
        self.env = {
            "REDIS_URL": self.settings.redis_url,
            "S3_ENDPOINT_URL": self.settings.s3_endpoint_url,
            "S3_BUCKET": self.settings.s3_bucket,
            "S3_PREFIX": self.settings.s3_prefix,
            **FAST_RECOVERY,
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self.redis: subprocess.Popen | None = None
        self.seaweed: subprocess.Popen | None = None
        self.gateway: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, **env: str) -> None:
        self.env.update(env)
        self.start_redis()
        self.start_seaweed()
        for queue in stack.WORKERS:
            self.start_worker(queue)
        self.gateway = stack.start_gateway(
            "127.0.0.1", self.gateway_port, self.logs / "gateway.log", self.env
        )
        stack.wait_for_consumers(self.url, list(stack.WORKERS))

    def start_redis(self) -> None:
        self.redis = stack.start_redis(self.redis_port, self.logs / "redis.log")

    def restart_redis(self) -> None:
        """What a crash and restart of a Redis without persistence does."""
        assert self.redis is not None
        os.killpg(self.redis.pid, signal.SIGKILL)
        self.redis.wait()
        self.start_redis()

    def start_seaweed(self) -> None:
        self.seaweed = stack.start_seaweed(
            self.root / "seaweedfs",
            self.ports,
            self.settings,
            self.logs / "seaweedfs.log",
        )

    def stop_seaweed(self) -> None:
        assert self.seaweed is not None
        stack.stop(self.seaweed)
        self.seaweed.wait()

    def start_worker(self, queue: str) -> None:
        self.workers[queue] = stack.start_worker(
            queue, self.logs / f"worker-{queue}.log", self.env, name=f"faults-{queue}"
        )

    def start_extra_worker(self, queue: str, name: str) -> None:
        self.workers[name] = stack.start_worker(
            queue, self.logs / f"worker-{name}.log", self.env, name=name
        )

    def kill_worker(self, queue: str) -> None:
        """kill -9 of the worker's main process and its pool children."""
        process = self.workers.pop(queue)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def kill_pool_children(self, queue: str) -> list[int]:
        """kill -9 of the pool processes only, as the kernel's OOM killer does."""
        children = _children(self.workers[queue].pid)
        for child in children:
            os.kill(child, signal.SIGKILL)
        return children

    def stop(self) -> None:
        processes = [*self.workers.values(), self.gateway, self.seaweed, self.redis]
        for process in processes:
            if process is not None and process.poll() is None:
                stack.stop(process)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


@pytest.fixture
def private_stack(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[PrivateStack]:
    logs = ARTIFACTS / "logs" / "faults" / request.node.name
    logs.mkdir(parents=True, exist_ok=True)
    private = PrivateStack(tmp_path, logs)
    marker = request.node.get_closest_marker("stack_env")
    private.start(**(marker.kwargs if marker else {}))
    yield private
    private.stop()


@pytest.fixture
def client(private_stack: PrivateStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=private_stack.url, timeout=30) as api:
        yield api


def wait_for(check, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} not seen within {timeout_s} s")
