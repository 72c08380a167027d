"""The local stack's commands, against a Redis of their own."""

from __future__ import annotations

import redis
from typer.testing import CliRunner

from scripts import stack
from tests.conftest import ARTIFACTS, free_port


def test_forget_deletes_the_platforms_keys_and_queues_and_nothing_else(monkeypatch):
    port = free_port()
    process = stack.start_redis(port, ARTIFACTS / "logs" / "redis-forget.log")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        connection = redis.Redis.from_url(url)
        connection.set("eduml:champion:t1:m", "3")
        connection.hset("eduml:metrics:jobs", "deployed", 20)
        connection.lpush("training", "a queued task")
        connection.set("another-app:key", "kept")
        monkeypatch.setenv("REDIS_URL", url)

        result = CliRunner().invoke(stack.cli, ["forget"])

        assert result.exit_code == 0, result.output
        assert "deleted 3 of the platform's keys" in result.output
        assert sorted(connection.keys()) == [b"another-app:key"]
    finally:
        stack.stop(process)
