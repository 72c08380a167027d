"""Every S3 object key and every Redis key the platform uses.

S3 holds what must survive: datasets, job records, versions, champions.
Redis holds queues, caches and locks, all of which can be rebuilt.
Everything is scoped by tenant.
"""

from __future__ import annotations


def text(value: bytes | str) -> str:
    """A key or value read back from Redis, which answers bytes, as text."""
    return value.decode() if isinstance(value, bytes) else value


def tenant_root(tenant: str) -> str:
    return f"tenants/{tenant}"


# --- S3 objects -----------------------------------------------------------


def dataset_table(tenant: str, dataset_id: str) -> str:
    return f"{tenant_root(tenant)}/datasets/{dataset_id}/table.csv"


def dataset_schema(tenant: str, dataset_id: str) -> str:
    return f"{tenant_root(tenant)}/datasets/{dataset_id}/schema.json"


def active_prefix(tenant: str) -> str:
    """One empty marker per unfinished job, so the reaper finds them by listing."""
    return f"{tenant_root(tenant)}/active/"


def active_marker(tenant: str, job_id: str) -> str:
    return f"{active_prefix(tenant)}{job_id}"


TENANTS_PREFIX = "tenants/"


def jobs_prefix(tenant: str) -> str:
    return f"{tenant_root(tenant)}/jobs/"


def job_record(tenant: str, job_id: str) -> str:
    return f"{jobs_prefix(tenant)}{job_id}.json"


def batch_predictions(tenant: str, job_id: str) -> str:
    """The predictions CSV a batch job writes."""
    return f"{tenant_root(tenant)}/predictions/{job_id}.csv"


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


def model_gates(tenant: str, model: str) -> str:
    return f"{model_root(tenant, model)}/gates.json"


def tenant_policy(tenant: str) -> str:
    return f"{tenant_root(tenant)}/policy.json"


def audit_prefix(tenant: str, model: str) -> str:
    return f"{model_root(tenant, model)}/audit/"


def audit_entry(tenant: str, model: str, entry_id: str) -> str:
    return f"{audit_prefix(tenant, model)}{entry_id}.json"


def champion(tenant: str, model: str) -> str:
    return f"{model_root(tenant, model)}/champion.json"


TENANTS_PREFIX = "tenants/"
API_KEY_INDEX_PREFIX = "auth/keys/"


def tenant_record(tenant: str) -> str:
    """A tenant's name and its API keys (hashes only, never a raw key)."""
    return f"{tenant_root(tenant)}/tenant.json"


def api_key_index(key_hash: str) -> str:
    """Maps the SHA-256 of an API key to its tenant and key id."""
    return f"{API_KEY_INDEX_PREFIX}{key_hash}.json"


# --- Redis keys -------------------------------------------------------------

REDIS_NAMESPACE = "eduml"


def champion_cache(tenant: str, model: str) -> str:
    return f"{REDIS_NAMESPACE}:champion:{tenant}:{model}"


def reply(address: str) -> str:
    """The list a serving task pushes its answer onto, for the caller waiting on it."""
    return f"{REDIS_NAMESPACE}:reply:{address}"


CHAMPION_CHANGES = f"{REDIS_NAMESPACE}:champion-changes"  # a pub/sub channel


def moodle_training(tenant: str, model: str) -> str:
    """Held while a Moodle model trains, so that its trainings run one at a time."""
    return f"{REDIS_NAMESPACE}:moodle-training:{tenant}:{model}"


def job_lease(tenant: str, job_id: str, step: str) -> str:
    """Held by the worker running one step of the job, renewed while it runs.

    One lease per step, so that training can hand the job to evaluation
    before it lets go of its own lease.
    """
    return f"{REDIS_NAMESPACE}:lease:{tenant}:{job_id}:{step}"


def job_dispatched(tenant: str, job_id: str) -> str:
    """Set while a task for the job waits in a queue, cleared when a worker takes it."""
    return f"{REDIS_NAMESPACE}:dispatched:{tenant}:{job_id}"


REAPER_LOCK = f"{REDIS_NAMESPACE}:lock:reaper"


def worker_heartbeat(worker: str) -> str:
    return f"{REDIS_NAMESPACE}:worker:{worker}"


WORKER_HEARTBEAT_PATTERN = f"{REDIS_NAMESPACE}:worker:*"

# kombu's Redis transport keeps a queue's messages of priority p > 0 in a
# list named queue + separator + p; priority 0 uses the queue's own name.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_lists(queue: str) -> list[str]:
    return [
        queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"
        for step in PRIORITY_STEPS
    ]


def job_orphaned(tenant: str, job_id: str) -> str:
    """When a reaper first saw the job with neither a lease nor a queued task."""
    return f"{REDIS_NAMESPACE}:orphaned:{tenant}:{job_id}"


def metric(name: str) -> str:
    return f"{REDIS_NAMESPACE}:metrics:{name}"


def queue_rate(direction: str, queue: str, slot: int) -> str:
    """Tasks into (``in``) or out of (``out``) a queue during one 10-second slot."""
    return f"{REDIS_NAMESPACE}:rate:{direction}:{queue}:{slot}"


def running_task(worker: str, task_id: str) -> str:
    return f"{REDIS_NAMESPACE}:running:{worker}:{task_id}"


def running_tasks_pattern(worker: str) -> str:
    return f"{REDIS_NAMESPACE}:running:{worker}:*"


CHAMPIONS_METRIC = f"{REDIS_NAMESPACE}:metrics:champions"


# --- dashboard ---------------------------------------------------------------

# Queue depths sampled over time for the dashboard's chart: a sorted set
# scored by the sample's time, trimmed to a window and expiring with it, so
# every gateway draws the same history and losing it loses only the chart.
QUEUE_DEPTH_SAMPLES = f"{REDIS_NAMESPACE}:ui:queue-depths"
