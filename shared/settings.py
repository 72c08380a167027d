"""One settings class for every service, read from environment variables.

The defaults run the local stack that ``make up`` starts; deployments set
the variables (``REDIS_URL``, ``S3_ENDPOINT_URL``, ...). Units are in the
names: ``_S`` seconds, ``_BYTES`` bytes.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False)

    # Broker, result backend, caches and locks. Nothing durable lives here.
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Artifact store: the source of truth for datasets, jobs and versions.
    s3_endpoint_url: str = "http://127.0.0.1:8333"
    s3_bucket: str = "eduml"
    s3_prefix: str = Field(
        default="",
        description="Key prefix inside the bucket; tests give each run its own.",
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: str = "eduml-local"
    s3_secret_access_key: str = "eduml-local-secret"
    s3_addressing_style: str = "path"
    s3_connect_timeout_s: float = 3.0
    s3_read_timeout_s: float = 30.0
    s3_max_attempts: int = 3

    # Tenancy. With ADMIN_API_KEY unset authentication is off (local
    # development only) and every request belongs to ``default_tenant``.
    default_tenant: str = "default"
    admin_api_key: str | None = Field(
        default=None,
        min_length=16,
        description="Secret that manages tenants and their API keys; no default.",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="Secret a Prometheus scraper sends for /metrics when "
        "authentication is on (ADMIN_API_KEY is accepted too).",
    )
    api_key_cache_ttl_s: float = Field(
        default=30.0,
        ge=0.0,
        description="How long a gateway trusts a looked-up API key; a revoked key "
        "is refused by every gateway within this time.",
    )
    pseudonym_key: str = Field(
        default="eduml-local-pseudonym-key",
        description="Secret that keys the HMAC pseudonyms of student ids.",
    )

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    max_upload_bytes: int = 200 * MIB
    max_csv_rows: int = 2_000_000
    max_csv_columns: int = 2_000
    max_predict_instances: int = 1_000
    predict_timeout_s: float = 10.0
    # Micro-batching of predict requests for one version (services/gateway/batching.py).
    predict_batch_window_ms: float = Field(
        default=3.0,
        ge=0.0,
        description="Longest wait of a request for others to join its batch, while "
        "PREDICT_BATCH_MAX_IN_FLIGHT batches of its version are already out.",
    )
    predict_batch_max_rows: int = Field(default=256, ge=1)
    predict_batch_max_in_flight: int = Field(
        default=2,
        ge=1,
        description="Batches of one version sent before the next one waits; about "
        "the serving pool processes.",
    )
    champion_local_ttl_s: float = Field(
        default=2.0,
        ge=0.0,
        description="How long a gateway keeps a champion record it read; a "
        "champion change announced on Redis drops it at once.",
    )
    predict_batch_threads: int = Field(
        default=4, ge=1, description="Gateway threads publishing predict tasks."
    )
    jobs_list_limit: int = 50

    # Training and evaluation.
    seed: int = 42
    test_fraction: float = 0.2
    min_training_rows: int = 10
    cv_folds: int = 5
    auto_budget_s: float = 60.0
    auto_max_rows: int = 20_000
    bootstrap_resamples: int = 300
    # Permutation importance in an evaluation report (services/evaluation/evidence.py)
    # costs one prediction of the rows per feature and repeat: these bound it.
    importance_max_rows: int = Field(
        default=1_000,
        ge=1,
        description="Held-out rows importance is measured on; more are sampled "
        "(seeded) down to this.",
    )
    importance_max_features: int = Field(
        default=50,
        ge=1,
        description="Features measured, the most promising first (association with "
        "the model's output); the others are listed as not measured.",
    )
    importance_budget_s: float = Field(
        default=60.0,
        gt=0.0,
        description="Seconds importance may take; no feature is started after it.",
    )
    training_time_limit_s: int = 1_800
    evaluation_time_limit_s: int = 600
    serving_time_limit_s: int = 30
    # Batch scoring (services/serving/batch.py), on the serving worker.
    batch_time_limit_s: int = 600
    batch_chunk_rows: int = Field(
        default=20_000,
        ge=1,
        description="Rows a batch job scores at once; its progress is recorded "
        "after each chunk.",
    )

    # Workers. A pool process above this resident size is replaced after its
    # task, so a leaking worker is recycled before the machine kills it.
    worker_max_memory_mib: int = 2_048
    # A dead worker's job is revived within about lease + grace + interval.
    lease_ttl_s: int = 30
    orphan_grace_s: float = 15.0
    reaper_interval_s: float = 10.0
    dependency_retries: int = 3
    step_delay_s: float = Field(
        default=0.0,
        description="Fault-test hook: each step of a job waits this long first.",
    )
    dependency_backoff_s: float = 2.0

    # Queue health: a queue is "warning" or "critical" past these.
    queue_warning_age_s: float = 60.0
    queue_critical_age_s: float = 600.0
    queue_warning_depth: int = 100

    # Celery.
    result_expires_s: int = 3_600
    visibility_timeout_s: int = 2 * 1_800 + 600
    serving_cache_versions: int = 8

    # Moodle's machine-learning backend protocol (services/gateway/moodle), on a
    # host and port of its own. Empty users turn it off.
    moodle_backend_host: str = "127.0.0.1"
    moodle_backend_port: int = 5050
    moodle_backend_users: str = Field(
        default="",
        description="Comma-separated 'user:password[@tenant]' entries; the password "
        "may be hashed ('sha256:<salt>:<hex>' or 'pbkdf2:sha256:<n>$<salt>$<hex>').",
    )
    moodle_backend_version: str = Field(
        default="3.0.5",
        description="Version reported at /version; Moodle 3.9 to 3.11 want 2.6.6.",
    )
    moodle_wait_s: float = Field(
        default=3_600.0,
        gt=0.0,
        description="How long a Moodle request waits for its training job or "
        "evaluation before answering Moodle's error status.",
    )

    log_level: str = "INFO"
    log_format: str = Field(
        default="json", description="'json' (one object a line) or 'text'."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
