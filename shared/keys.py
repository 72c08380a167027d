"""Every S3 object key and every Redis key the platform uses.

S3 holds what must survive: datasets, job records, versions, champions.
Redis holds queues, caches and locks, all of which can be rebuilt.
Everything is scoped by tenant.
"""

from __future__ import annotations


def tenant_root(tenant: str) -> str:
    return f"tenants/{tenant}"


# --- S3 objects -----------------------------------------------------------


def dataset_table(tenant: str, dataset_id: str) -> str:
    return f"{tenant_root(tenant)}/datasets/{dataset_id}/table.csv"


def dataset_schema(tenant: str, dataset_id: str) -> str:
    return f"{tenant_root(tenant)}/datasets/{dataset_id}/schema.json"


def jobs_prefix(tenant: str) -> str:
    return f"{tenant_root(tenant)}/jobs/"


def job_record(tenant: str, job_id: str) -> str:
    return f"{jobs_prefix(tenant)}{job_id}.json"


def job_artifact(tenant: str, job_id: str) -> str:
    """Where a job's fitted pipeline waits until it becomes a version."""
    return f"{tenant_root(tenant)}/artifacts/{job_id}/pipeline.pkl"


def models_prefix(tenant: str) -> str:
    return f"{tenant_root(tenant)}/models/"


def model_root(tenant: str, model: str) -> str:
    return f"{models_prefix(tenant)}{model}"


def versions_prefix(tenant: str, model: str) -> str:
    return f"{model_root(tenant, model)}/versions/"


def version_record(tenant: str, model: str, version: int) -> str:
    return f"{versions_prefix(tenant, model)}{version:06d}/version.json"


def version_report(tenant: str, model: str, version: int) -> str:
    return f"{versions_prefix(tenant, model)}{version:06d}/report.json"


def version_from_prefix(prefix: str) -> int:
    """The version number of a folder listed under ``versions_prefix``."""
    return int(prefix.rstrip("/").rsplit("/", 1)[-1])


def champion(tenant: str, model: str) -> str:
    return f"{model_root(tenant, model)}/champion.json"


# --- Redis keys -------------------------------------------------------------

REDIS_NAMESPACE = "eduml"


def champion_cache(tenant: str, model: str) -> str:
    return f"{REDIS_NAMESPACE}:champion:{tenant}:{model}"


def registry_lock(tenant: str, model: str) -> str:
    return f"{REDIS_NAMESPACE}:lock:registry:{tenant}:{model}"


def worker_heartbeat(worker: str) -> str:
    return f"{REDIS_NAMESPACE}:worker:{worker}"


WORKER_HEARTBEAT_PATTERN = f"{REDIS_NAMESPACE}:worker:*"

# kombu's Redis transport keeps a queue's messages of priority p > 0 in a
# list named queue + separator + p; priority 0 uses the queue's own name.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
