"""Health probes for containers: exit 0 when the service is alive, 1 when not.

``python -m scripts.probe worker --name training@%h`` checks the heartbeat
key a worker's main process rewrites every few seconds in Redis (see
``shared/queues.py``); ``%h`` is expanded to this host's name exactly as
Celery expands it in ``-n``. ``python -m scripts.probe gateway`` asks the
gateway on this host for ``/readyz`` (or ``--path /healthz``); with
``--port 5050``, the Moodle backend app, which answers the same two paths.
``python -m scripts.probe service`` checks whichever of these the
container's first process is (the image's HEALTHCHECK uses it).

Kubernetes exec probes, compose health checks and the image use these. The
probe imports neither Celery's app nor the services, so it answers quickly.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

import redis
import typer
from celery.utils.nodenames import host_format

from shared import keys
from shared.settings import Settings

PROBE_TIMEOUT_S = 3.0
CONTAINER_COMMAND = Path("/proc/1/cmdline")

cli = typer.Typer(add_completion=False, help=__doc__)


@cli.command()
def worker(
    name: str = typer.Option(..., help="the worker's -n name, e.g. training@%h"),
    redis_down_ok: bool = typer.Option(
        False,
        "--redis-down-ok",
        help="pass when Redis does not answer: a liveness probe must not restart "
        "workers, and kill their running jobs, for an outage of Redis",
    ),
) -> None:
    """Alive while the worker's heartbeat key exists in Redis."""
    node = host_format(name)
    settings = Settings()
    try:
        connection = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=PROBE_TIMEOUT_S,
            socket_connect_timeout=PROBE_TIMEOUT_S,
        )
        alive = bool(connection.exists(keys.worker_heartbeat(node)))
    except redis.RedisError as error:
        message = f"worker {node}: Redis at REDIS_URL did not answer: {error}"
        if redis_down_ok:
            print(f"{message}; passing, as asked", file=sys.stderr)
            return
        fail(message)
    if not alive:
        fail(
            f"worker {node}: no heartbeat key {keys.worker_heartbeat(node)!r} in Redis"
        )


@cli.command()
def gateway(
    path: str = typer.Option(
        "/readyz", help="/readyz (Redis and S3 answer) or /healthz"
    ),
    port: int = typer.Option(0, help="the gateway's port; 0 takes GATEWAY_PORT"),
) -> None:
    """Alive while the gateway on this host answers ``path`` with 200."""
    url = f"http://127.0.0.1:{port or Settings().gateway_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        fail(f"gateway: {url} did not answer: {error}")
    if status != 200:
        fail(f"gateway: {url} answered {status}")


@cli.command()
def service() -> None:
    """Probe the service this container runs, as its first process shows it."""
    command = CONTAINER_COMMAND.read_bytes().decode().split("\0")
    programs = {Path(part).name for part in command}
    if "celery" in programs:
        worker(name=_option(command, "-n", "--hostname") or "celery@%h")
    elif "uvicorn" in programs:
        gateway(path="/readyz", port=int(_option(command, "--port") or 0))
    else:
        fail(
            f"service: the first process is neither a worker nor the gateway: {command}"
        )


def _option(command: list[str], *names: str) -> str | None:
    for index, part in enumerate(command[:-1]):
        if part in names:
            return command[index + 1]
    return None


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise typer.Exit(1)


if __name__ == "__main__":
    cli()
