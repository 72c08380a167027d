"""The evaluation task: score a candidate against the champion, then decide.

The candidate and the current champion are scored on the same held-out rows
the training service kept aside. The report holds the metrics with a
bootstrap interval, the trivial baseline, calibration, the ROC curves of
the candidate and the champion (binary classifiers), residuals (regressors),
the share of at-risk students found at the model's capacity, per-group
tables and feature importance; the decision checks the model's gates (see
decision.py). A promotion is a compare-and-set: if another evaluation
promoted a version meanwhile, the candidate is judged again against that
one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from celery import Task

from services.evaluation import evidence, uncertainty
from services.evaluation.decision import Comparison, Decision, decide
from services.evaluation.metrics import baseline_metrics, primary_metric
from shared import artifacts, costs, metrics
from shared.celery_app import EVALUATE_TASK, EVALUATION_QUEUE, app
from shared.clients import Clients
from shared.errors import Conflict, PlatformError
from shared.job_steps import run_step
from shared.jobs import JobRecord, JobStatus, now_iso
from shared.logs import job_context
from shared.registry import VersionRecord, announce_champion
from shared.settings import get_settings
from shared.targets import CLASSIFICATION, target_values

log = logging.getLogger(__name__)
settings = get_settings()

PROMOTION_ATTEMPTS = 3


@app.task(
    name=EVALUATE_TASK,
    bind=True,
    soft_time_limit=settings.evaluation_time_limit_s,
    time_limit=settings.evaluation_time_limit_s + 30,
)
def evaluate(task: Task, tenant: str, job_id: str) -> None:
    with job_context(job_id=job_id, tenant=tenant, queue=EVALUATION_QUEUE):
        evaluate_job(task, tenant, job_id)


def evaluate_job(task: Task, tenant: str, job_id: str) -> None:
    run_step(
        task,
        tenant,
        job_id,
        JobStatus.EVALUATING,
        ready_to_evaluate,
        run_evaluation,
        settings.evaluation_time_limit_s,
    )


def ready_to_evaluate(record: JobRecord) -> bool:
    return record.status is JobStatus.EVALUATING and record.version is not None


def run_evaluation(clients: Clients, record: JobRecord) -> None:
    with costs.measure() as cost:
        evaluate_version(clients, record, record.version or 0, cost)


@dataclass
class HeldOut:
    X: pd.DataFrame
    y: np.ndarray
    y_train: np.ndarray


@dataclass
class Judged:
    """A candidate's scores and evidence on its held-out rows."""

    version: VersionRecord
    pipeline: Any
    metric: str
    out: evidence.Outputs
    metrics: dict[str, float | None]
    baseline: dict[str, float | None]
    groups: dict[str, Any]


@dataclass
class Outcome:
    """What an evaluation concluded: the report, the decision, the job's metrics."""

    report: dict[str, Any]
    decision: Decision
    metric: str
    metrics: dict[str, float | None] | None


def evaluate_version(
    clients: Clients, record: JobRecord, number: int, cost: costs.Cost
) -> None:
    tenant, model = record.tenant, record.model
    candidate = clients.registry.get_version(tenant, model, number)
    if candidate.test_rows:
        outcome = assess(clients, record, candidate)
    else:
        outcome = not_assessed(clients, record, candidate)

    clients.registry.save_report(tenant, model, number, outcome.report)
    decision = outcome.decision
    status = JobStatus.DEPLOYED if decision.promoted else JobStatus.REJECTED
    spent = cost.summary()
    costs.report(clients.connection, "evaluation", spent)
    clients.jobs.set_status(
        tenant,
        record.id,
        status,
        metrics=outcome.metrics,
        decision=decision.public(outcome.metric),
        costs={**record.costs, "evaluation": spent},
    )
    metrics.inc(
        clients.connection, "eduml_jobs_finished_total", {"status": status.value}
    )
    log.info("evaluation job %s: %s v%d %s", record.id, model, number, status.value)


def assess(clients: Clients, record: JobRecord, candidate: VersionRecord) -> Outcome:
    """Score the candidate on its held-out rows, decide, promote if it passes."""
    held_out = load_held_out(clients, candidate)
    judged = judge(clients, record, candidate, held_out)
    decision = decide_and_promote(clients, record, judged, held_out)
    report = build_report(record, judged, held_out, decision)
    return Outcome(report, decision, judged.metric, judged.metrics)


def not_assessed(
    clients: Clients, record: JobRecord, candidate: VersionRecord
) -> Outcome:
    """A version fitted on every row (a job with ``hold_out`` off) is not promoted.

    No row was kept aside to score it on, so no gate can be checked; the
    report says so. The Moodle backend, which asks for such jobs for sets
    too small to split, serves the version all the same.
    """
    metric = primary_metric(
        candidate.task, len(candidate.classes or []), candidate.has_proba
    )
    champion = clients.registry.champion(candidate.tenant, candidate.model)
    train_rows = candidate.rows.get("train", 0)
    reason = (
        f"not evaluated: v{candidate.version} was fitted on all {train_rows} "
        "labelled rows and none were held out to score it on (too few to split)"
    )
    decision = Decision(
        promoted=False,
        reasons=[reason],
        champion=Comparison(version=champion.version if champion else None),
    )
    request = record.request
    report = {
        "model": candidate.model,
        "version": candidate.version,
        "job_id": candidate.job_id,
        "task": candidate.task,
        "primary_metric": metric,
        "metrics": None,
        "intervals": {},
        "baseline": None,
        "calibration": None,
        "capacity": None,
        "roc": None,
        "residuals": None,
        "groups": {},
        "group_gaps": {},
        "group_columns": request.group_columns,
        "min_group_size": request.min_group_size,
        "importance": [],
        "importance_scope": None,
        "gates": request.gates.model_dump(),
        "decision": decision.public(metric),
        "validation": {
            "scheme": "none: fitted on every labelled row, none held out",
            "test_fraction": 0.0,
            "seed": candidate.seed,
            "stratified": False,
            "rows": candidate.rows,
        },
        "selection": candidate.selection,
        "tuning": candidate.tuning,
        "evaluated_at": now_iso(),
    }
    return Outcome(report, decision, metric, None)


def judge(
    clients: Clients, record: JobRecord, candidate: VersionRecord, held_out: HeldOut
) -> Judged:
    pipeline = artifacts.load(clients.storage, candidate)
    metric = primary_metric(
        candidate.task, len(candidate.classes or []), candidate.has_proba
    )
    out = evidence.outputs(pipeline, candidate, held_out.X)
    return Judged(
        version=candidate,
        pipeline=pipeline,
        metric=metric,
        out=out,
        metrics=evidence.metrics_of(candidate, held_out.y, out),
        baseline=baseline_metrics(
            candidate.task, held_out.y_train, held_out.y, candidate.classes or []
        ),
        groups=evidence.groups_of(
            record.request, candidate, held_out.X, held_out.y, out
        ),
    )


def load_held_out(clients: Clients, version: VersionRecord) -> HeldOut:
    _, frame = clients.datasets.load(version.tenant, version.dataset_id)
    return split_held_out(frame, version)


def split_held_out(frame: pd.DataFrame, version: VersionRecord) -> HeldOut:
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[version.test_rows] = True
    labelled = frame[version.target].notna().to_numpy()
    test = frame[is_test].reset_index(drop=True)
    train = frame[labelled & ~is_test]
    return HeldOut(
        X=test,
        y=target_values(test[version.target], version.task).to_numpy(),
        y_train=target_values(train[version.target], version.task).to_numpy(),
    )


def decide_and_promote(
    clients: Clients, record: JobRecord, judged: Judged, held_out: HeldOut
) -> Decision:
    candidate = judged.version
    tenant, model = candidate.tenant, candidate.model
    gaps = judged.groups["gaps"]
    for _ in range(PROMOTION_ATTEMPTS):
        champion = clients.registry.champion(tenant, model)
        expected = champion.version if champion else None
        comparison = compare(clients, record, judged, expected, held_out)
        decision = decide(
            judged.metric,
            judged.metrics,
            judged.baseline,
            comparison,
            record.request.gates,
            gaps,
        )
        if not decision.promoted:
            return decision
        try:
            clients.registry.promote(
                tenant,
                model,
                candidate.version,
                expected=expected,
                reason=decision.reasons[0],
            )
        except Conflict as error:
            log.info(
                "evaluation of %s v%d: %s", model, candidate.version, error.message
            )
            continue
        announce_champion(clients.connection, tenant, model, candidate.version)
        clients.registry.audit(
            tenant,
            model,
            "promote",
            "evaluation service",
            decision.reasons[0],
            version=candidate.version,
            previous=expected,
            job_id=record.id,
        )
        return decision
    return Decision(
        promoted=False,
        reasons=[
            f"the champion kept changing during {PROMOTION_ATTEMPTS} promotion attempts"
        ],
        champion=Comparison(version=None),
    )


def compare(
    clients: Clients,
    record: JobRecord,
    judged: Judged,
    number: int | None,
    held_out: HeldOut,
) -> Comparison:
    """The champion scored on the candidate's held-out rows, where it can be."""
    candidate = judged.version
    if number is None or number == candidate.version:
        return Comparison(version=number)
    try:
        champion = clients.registry.get_version(
            candidate.tenant, candidate.model, number
        )
        missing = [
            f.name for f in champion.features if f.name not in held_out.X.columns
        ]
        if missing:
            return Comparison(
                number,
                note=f"champion v{number} needs columns {missing!r} this dataset lacks",
            )
        pipeline = artifacts.load(clients.storage, champion)
    except PlatformError as error:
        return Comparison(
            number, note=f"champion v{number} could not be scored: {error.message}"
        )
    out = evidence.outputs(pipeline, champion, held_out.X)
    gain = uncertainty.paired_difference(
        evidence.score_fn(judged.metric, candidate, held_out.y, judged.out),
        evidence.score_fn(judged.metric, champion, held_out.y, out),
        len(held_out.y),
        settings.bootstrap_resamples,
        candidate.seed,
    )
    groups = evidence.groups_of(record.request, champion, held_out.X, held_out.y, out)
    return Comparison(
        number,
        metrics=evidence.metrics_of(champion, held_out.y, out),
        gain_interval=gain,
        gaps=groups["gaps"],
        roc=evidence.roc_of(champion, held_out.y, out)
        if champion.classes == candidate.classes
        else None,
    )


def build_report(
    record: JobRecord, judged: Judged, held_out: HeldOut, decision: Decision
) -> dict[str, Any]:
    version, request = judged.version, record.request
    score = evidence.score_fn(judged.metric, version, held_out.y, judged.out)
    extras = evidence.classifier_extras(
        version, held_out.y, judged.out, request.capacity
    )
    importance, importance_scope = evidence.importance(
        judged.pipeline,
        version,
        held_out.X,
        held_out.y,
        judged.metric,
        importance_budget(),
    )
    if importance_scope and not importance_scope["complete"]:
        log.info("evaluation job %s: %s", record.id, importance_scope["note"].lower())
    return {
        "model": version.model,
        "version": version.version,
        "job_id": version.job_id,
        "task": version.task,
        "primary_metric": judged.metric,
        "metrics": judged.metrics,
        "intervals": {
            judged.metric: evidence.interval(
                score, len(held_out.y), settings.bootstrap_resamples, version.seed
            )
        },
        "baseline": judged.baseline,
        "calibration": extras["calibration"],
        "capacity": extras["capacity"],
        "roc": evidence.roc_section(
            version, held_out.y, judged.out, decision.champion.roc
        ),
        "residuals": evidence.residuals_of(version, held_out.y, judged.out),
        "groups": judged.groups["table"],
        "group_gaps": judged.groups["gaps"],
        "group_columns": request.group_columns,
        "min_group_size": request.min_group_size,
        "importance": importance,
        "importance_scope": importance_scope,
        "gates": request.gates.model_dump(),
        "decision": decision.public(judged.metric),
        "validation": {
            "scheme": "held-out split"
            + (
                f" by groups of {version.group_split_column!r}"
                if version.group_split_column
                else ""
            ),
            "test_fraction": settings.test_fraction,
            "seed": version.seed,
            "stratified": version.task == CLASSIFICATION
            and not version.group_split_column,
            "rows": version.rows,
        },
        "selection": version.selection,
        "tuning": version.tuning,
        "evaluated_at": now_iso(),
    }


def importance_budget() -> evidence.ImportanceBudget:
    return evidence.ImportanceBudget(
        max_rows=settings.importance_max_rows,
        max_features=settings.importance_max_features,
        seconds=settings.importance_budget_s,
    )
