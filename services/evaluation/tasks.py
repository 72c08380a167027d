"""The evaluation task: score a candidate against the champion, then decide.

The candidate and the current champion are scored on the same held-out rows
the training service kept aside. The candidate is promoted when there is no
champion, or when it beats both the trivial baseline and the champion on
the model's primary metric. The promotion is a compare-and-set: if another
evaluation promoted a version meanwhile, the candidate is scored again
against that one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from services.evaluation.metrics import (
    baseline_metrics,
    better,
    classification_metrics,
    primary_metric,
    regression_metrics,
)
from shared import artifacts
from shared.celery_app import EVALUATE_TASK, app
from shared.clients import Clients, get_clients
from shared.errors import Conflict, DependencyUnavailable, PlatformError
from shared.job_steps import claim, fail, holder_name, retry_or_fail
from shared.jobs import JobRecord, JobStatus, now_iso
from shared.registry import VersionRecord, forget_champion
from shared.settings import get_settings
from shared.targets import CLASSIFICATION, target_values

log = logging.getLogger(__name__)
settings = get_settings()

PROMOTION_ATTEMPTS = 3


@dataclass
class HeldOut:
    X: pd.DataFrame
    y: pd.Series
    y_train: pd.Series


@dataclass
class Decision:
    promoted: bool
    reasons: list[str]
    champion_version: int | None
    champion_metrics: dict[str, float | None] | None = None
    notes: list[str] = field(default_factory=list)

    def public(self, metric: str) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "primary_metric": metric,
            "reason": self.reasons[0],
            "reasons": self.reasons,
            "champion_version": self.champion_version,
            "champion_metrics": self.champion_metrics,
        }


@app.task(
    name=EVALUATE_TASK,
    bind=True,
    soft_time_limit=settings.evaluation_time_limit_s,
    time_limit=settings.evaluation_time_limit_s + 30,
)
def evaluate(task: Task, tenant: str, job_id: str) -> None:
    clients = get_clients()
    try:
        record = clients.jobs.get(tenant, job_id)
    except DependencyUnavailable as error:
        retry_or_fail(task, clients, tenant, job_id, JobStatus.EVALUATING, error)
        return
    if record.status is not JobStatus.EVALUATING or record.version is None:
        log.info("evaluation job %s: status %s, nothing to do", job_id, record.status.value)
        return
    lease = claim(clients, tenant, job_id, holder_name(task))
    if lease is None:
        return
    try:
        run_evaluation(clients, record, lease.holder)
    except DependencyUnavailable as error:
        retry_or_fail(task, clients, tenant, job_id, JobStatus.EVALUATING, error)
    except SoftTimeLimitExceeded:
        fail(clients, tenant, job_id,
             f"evaluation exceeded {settings.evaluation_time_limit_s} s")
    except PlatformError as error:
        fail(clients, tenant, job_id, error.message)
    except Exception as error:  # a worker must outlive any one job
        log.exception("evaluation job %s: unexpected failure", job_id)
        fail(clients, tenant, job_id, f"evaluation failed: {type(error).__name__}: {error}")
    finally:
        lease.release()


def run_evaluation(clients: Clients, record: JobRecord, holder: str) -> None:
    record = clients.jobs.update(
        record.tenant, record.id, lambda job: setattr(job, "worker", holder)
    )
    time.sleep(settings.step_delay_s)
    evaluate_version(clients, record, record.version or 0)


def evaluate_version(clients: Clients, record: JobRecord, number: int) -> None:
    tenant, model = record.tenant, record.model
    candidate = clients.registry.get_version(tenant, model, number)
    held_out = load_held_out(clients, candidate)
    pipeline = artifacts.load(clients.storage, candidate)

    metric = primary_metric(candidate.task, len(candidate.classes or []), candidate.has_proba)
    metrics = score(pipeline, candidate, held_out)
    baseline = baseline_metrics(
        candidate.task, held_out.y_train, held_out.y, candidate.classes or []
    )

    decision = decide_and_promote(clients, candidate, held_out, metric, metrics, baseline)

    report = build_report(candidate, metric, metrics, baseline, decision)
    clients.registry.save_report(tenant, model, number, report)
    status = JobStatus.DEPLOYED if decision.promoted else JobStatus.REJECTED
    clients.jobs.set_status(
        tenant, record.id, status, metrics=metrics, decision=decision.public(metric)
    )
    log.info("evaluation job %s: %s v%d %s", record.id, model, number, status.value)


def load_held_out(clients: Clients, version: VersionRecord) -> HeldOut:
    _, frame = clients.datasets.load(version.tenant, version.dataset_id)
    return split_held_out(frame, version)


def split_held_out(frame: pd.DataFrame, version: VersionRecord) -> HeldOut:
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[version.test_rows] = True
    labelled = frame[version.target].notna().to_numpy()
    test = frame[is_test]
    train = frame[labelled & ~is_test]
    return HeldOut(
        X=test,
        y=target_values(test[version.target], version.task),
        y_train=target_values(train[version.target], version.task),
    )


def score(pipeline: Any, version: VersionRecord, held_out: HeldOut) -> dict[str, float | None]:
    columns = [feature.name for feature in version.features]
    X = held_out.X[columns]
    predicted = pipeline.predict(X)
    if version.task != CLASSIFICATION:
        return regression_metrics(held_out.y.to_numpy(), predicted)
    proba = pipeline.predict_proba(X) if version.has_proba else None
    return classification_metrics(held_out.y.to_numpy(), predicted, proba, version.classes or [])


def decide_and_promote(
    clients: Clients,
    candidate: VersionRecord,
    held_out: HeldOut,
    metric: str,
    metrics: dict[str, float | None],
    baseline: dict[str, float | None],
) -> Decision:
    tenant, model = candidate.tenant, candidate.model
    for _ in range(PROMOTION_ATTEMPTS):
        champion = clients.registry.champion(tenant, model)
        expected = champion.version if champion else None
        champion_metrics, note = score_champion(clients, candidate, expected, held_out)
        decision = decide(metric, metrics, baseline, expected, champion_metrics, note)
        if not decision.promoted:
            return decision
        try:
            clients.registry.promote(
                tenant, model, candidate.version, expected=expected, reason=decision.reasons[0]
            )
        except Conflict as error:
            log.info("evaluation of %s v%d: %s", model, candidate.version, error.message)
            continue
        forget_champion(clients.connection, tenant, model)
        return decision
    return Decision(
        promoted=False,
        reasons=[f"the champion kept changing during {PROMOTION_ATTEMPTS} promotion attempts"],
        champion_version=None,
    )


def score_champion(
    clients: Clients, candidate: VersionRecord, number: int | None, held_out: HeldOut
) -> tuple[dict[str, float | None] | None, str | None]:
    if number is None or number == candidate.version:
        return None, None
    tenant = candidate.tenant
    try:
        champion = clients.registry.get_version(tenant, candidate.model, number)
        missing = [f.name for f in champion.features if f.name not in held_out.X.columns]
        if missing:
            return None, f"champion v{number} needs columns {missing!r} this dataset lacks"
        pipeline = artifacts.load(clients.storage, champion)
        return score(pipeline, champion, held_out), None
    except PlatformError as error:
        return None, f"champion v{number} could not be scored: {error.message}"


def decide(
    metric: str,
    metrics: dict[str, float | None],
    baseline: dict[str, float | None],
    champion_version: int | None,
    champion_metrics: dict[str, float | None] | None,
    champion_note: str | None,
) -> Decision:
    value = metrics.get(metric)
    floor = baseline.get(metric)

    def reject(reason: str) -> Decision:
        return Decision(False, [reason], champion_version, champion_metrics)

    def promote(reason: str) -> Decision:
        return Decision(True, [reason], champion_version, champion_metrics)

    if value is None:
        return reject(f"{metric} is undefined on the held-out rows")
    if floor is not None and not better(metric, value, floor):
        return reject(
            f"{metric} {value:.4f} does not beat the trivial baseline's {floor:.4f}"
        )
    if champion_version is None:
        return promote(f"first version to beat the baseline ({metric} {value:.4f})")
    if champion_metrics is None:
        return promote(f"{champion_note}; candidate beats the baseline ({metric} {value:.4f})")
    held = champion_metrics.get(metric)
    if held is None or better(metric, value, held):
        return promote(
            f"{metric} {value:.4f} beats champion v{champion_version}'s {_fmt(held)}"
        )
    return reject(
        f"{metric} {value:.4f} does not beat champion v{champion_version}'s {_fmt(held)}"
    )


def build_report(
    version: VersionRecord,
    metric: str,
    metrics: dict[str, float | None],
    baseline: dict[str, float | None],
    decision: Decision,
) -> dict[str, Any]:
    return {
        "model": version.model,
        "version": version.version,
        "job_id": version.job_id,
        "task": version.task,
        "primary_metric": metric,
        "metrics": metrics,
        "baseline": baseline,
        "decision": decision.public(metric),
        "validation": {
            "scheme": "held-out split",
            "test_fraction": settings.test_fraction,
            "seed": version.seed,
            "stratified": version.task == CLASSIFICATION,
            "rows": version.rows,
        },
        "selection": version.selection,
        "evaluated_at": now_iso(),
    }


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
