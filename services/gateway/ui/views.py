"""What each dashboard page shows, read through the same objects as the JSON API.

Each function takes the process's clients and the viewer's tenant and
returns the context of one template: plain values and SVG plots. Nothing
here calls the HTTP API.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import redis
from markupsafe import Markup

from services.gateway.schemas import ID_PATTERN, MODEL_NAME_PATTERN
from services.gateway.ui import plots, samples
from shared.clients import Clients
from shared.errors import NotFound
from shared.jobs import JobRecord, JobStatus
from shared.queues import queue_report
from shared.registry import Champion

RECENT_JOBS_SHOWN = 10
VERSIONS_SHOWN = 30
FEATURES_SHOWN = 20
WINDOWS_MIN = (5, 15, 60)
HISTORY_MARGIN_S = 5
STATE_COLORS = {
    JobStatus.QUEUED.value: "#9aa5b1",
    JobStatus.TRAINING.value: "#0072B2",
    JobStatus.EVALUATING.value: "#CC79A7",
    JobStatus.SCORING.value: "#56B4E9",
    JobStatus.DEPLOYED.value: "#009E73",
    JobStatus.DONE.value: "#009E73",
    JobStatus.REJECTED.value: "#E69F00",
    JobStatus.FAILED.value: "#D55E00",
}
STATE_ORDER = list(STATE_COLORS)
# Per-group figures drawn as bars: a classifier's errors fall on groups
# through recall, false alarms and how many it flags; a regressor's through
# its absolute and its signed error.
CLASSIFIER_GROUP_METRICS = ("recall", "false_positive_rate", "selection_rate")
REGRESSOR_GROUP_METRICS = ("mae", "mean_error")
LOWER_IS_BETTER = {"mae", "rmse", "log_loss"}
# Metrics drawn side by side with the baseline's: one scale per task.
NO_ROC = "it needs probabilities of two classes, both among the students"
COMPARED_METRICS = {
    "classification": ("roc_auc", "balanced_accuracy", "f1", "precision", "recall"),
    "regression": ("mae", "rmse"),
}


# --- overview -----------------------------------------------------------------


def overview(c: Clients, owner: str) -> dict[str, Any]:
    jobs = c.jobs.recent(owner, c.settings.jobs_list_limit)
    counts = {state: 0 for state in STATE_ORDER}
    for record in jobs:
        counts[record.status.value] += 1
    return {
        "title": "Overview",
        "counts": counts,
        "jobs_counted": len(jobs),
        "models": len(c.registry.models(owner)),
        "jobs": [job_row(record) for record in jobs[:RECENT_JOBS_SHOWN]],
        **queues_now(c),
    }


# --- jobs ---------------------------------------------------------------------


def jobs(c: Clients, owner: str) -> dict[str, Any]:
    records = c.jobs.recent(owner, c.settings.jobs_list_limit)
    return {
        "title": "Jobs",
        "jobs": [job_row(record) for record in records],
        "limit": c.settings.jobs_list_limit,
    }


def job(c: Clients, owner: str, job_id: str) -> dict[str, Any]:
    if not re.fullmatch(ID_PATTERN, job_id):
        raise NotFound(f"job {job_id!r} not found")
    record = c.jobs.get(owner, job_id)
    primary = (record.decision or {}).get("primary_metric")
    return {
        "title": f"Job {record.id}",
        "job": record.public(),
        "row": job_row(record),
        "steps": steps(record),
        "timeline": job_timeline(record),
        "metrics": sorted((record.metrics or {}).items()),
        "primary": primary,
        "finished": record.status.finished,
    }


def job_row(record: JobRecord) -> dict[str, Any]:
    """One line of a jobs table."""
    times = _times(record)
    decision = record.decision or {}
    primary = decision.get("primary_metric")
    value = (record.metrics or {}).get(primary) if primary else None
    end = times[-1][1] if record.status.finished and times else time.time()
    return {
        "id": record.id,
        "model": record.model,
        "status": record.status.value,
        "algorithm": record.request.algorithm,
        "task": record.request.task,
        "version": record.version,
        "primary": primary,
        "score": value,
        "queued_at": record.timestamps.get(JobStatus.QUEUED.value),
        "took_s": end - times[0][1] if times else None,
        "reason": decision.get("reason") or record.error,
    }


def steps(record: JobRecord) -> list[dict[str, Any]]:
    """Each state the job entered, when, and how long it stayed."""
    times = _times(record)
    rows = []
    for index, (state, at) in enumerate(times):
        following = times[index + 1][1] if index + 1 < len(times) else None
        if following is None and not JobStatus(state).finished:
            following = time.time()
        rows.append(
            {
                "state": state,
                "at": record.timestamps[state],
                "offset_s": at - times[0][1],
                "stayed_s": None if following is None else following - at,
                "current": index == len(times) - 1,
            }
        )
    return rows


def job_timeline(record: JobRecord) -> Markup:
    rows = steps(record)
    segments = []
    for row in rows:
        final = JobStatus(row["state"]).finished
        start = row["offset_s"]
        if final:
            label = f"{row['state']} at {duration(start)}"
            segments.append(
                plots.Segment(
                    row["state"], start, start, label, STATE_COLORS[row["state"]]
                )
            )
            continue
        stayed = row["stayed_s"] or 0.0
        ongoing = row["current"]
        label = duration(stayed) + (" so far" if ongoing else "")
        segments.append(
            plots.Segment(
                row["state"],
                start,
                start + stayed,
                label,
                STATE_COLORS[row["state"]],
                ongoing=ongoing,
            )
        )
    return plots.timeline(
        "timeline",
        [row["state"] for row in rows],
        segments,
        title=f"states of job {record.id} over time",
    )


def _times(record: JobRecord) -> list[tuple[str, float]]:
    """(state, epoch seconds) in the order the job went through them."""
    parsed = [
        (state, parse_time(at))
        for state, at in record.timestamps.items()
        if state in STATE_COLORS
    ]
    return sorted(parsed, key=lambda pair: (pair[1], STATE_ORDER.index(pair[0])))


# --- models -------------------------------------------------------------------


def models(c: Clients, owner: str) -> dict[str, Any]:
    rows = []
    for name in c.registry.models(owner):
        numbers = c.registry.versions(owner, name)
        champion = c.registry.champion(owner, name)
        report = (
            c.registry.get_report(owner, name, champion.version) or {}
            if champion
            else {}
        )
        primary = report.get("primary_metric")
        rows.append(
            {
                "model": name,
                "versions": len(numbers),
                "latest": numbers[-1] if numbers else None,
                "champion": champion.version if champion else None,
                "since": champion.since if champion else None,
                "primary": primary,
                "score": (report.get("metrics") or {}).get(primary)
                if primary
                else None,
                "task": report.get("task"),
            }
        )
    return {"title": "Models", "models": rows}


def model(c: Clients, owner: str, name: str, chosen: int | None) -> dict[str, Any]:
    if not re.fullmatch(MODEL_NAME_PATTERN, name):
        raise NotFound(f"model {name!r} not found")
    numbers = c.registry.require_model(owner, name)
    champion = c.registry.champion(owner, name)
    shown = numbers[-VERSIONS_SHOWN:]
    versions = [version_row(c, owner, name, number, champion) for number in shown]
    if chosen is None:
        chosen = champion.version if champion else numbers[-1]
    if chosen not in numbers:
        raise NotFound(f"model {name!r} has no version {chosen}")
    selected = next((row for row in versions if row["version"] == chosen), None)
    if selected is None:
        selected = version_row(c, owner, name, chosen, champion)
    return {
        "title": f"Model {name}",
        "model": name,
        "champion": champion,
        "versions": list(reversed(versions)),
        "hidden": len(numbers) - len(shown),
        "history": metric_history(versions),
        "selected": selected,
        "evidence": evidence(selected),
    }


def version_row(
    c: Clients, owner: str, name: str, number: int, champion: Champion | None
) -> dict[str, Any]:
    record = c.registry.get_version(owner, name, number)
    report = c.registry.get_report(owner, name, number) or {}
    decision = report.get("decision") or {}
    primary = report.get("primary_metric") or decision.get("primary_metric")
    metrics = report.get("metrics") or {}
    return {
        "version": number,
        "record": record,
        "report": report,
        "champion": champion is not None and champion.version == number,
        "primary": primary,
        "score": metrics.get(primary) if primary else None,
        "baseline": (report.get("baseline") or {}).get(primary) if primary else None,
        "interval": (report.get("intervals") or {}).get(primary) if primary else None,
        "promoted": decision.get("promoted"),
        "reason": decision.get("reason"),
    }


def metric_history(versions: list[dict[str, Any]]) -> Markup:
    """The primary metric of each version, the baseline, the champion marked."""
    scored = [row for row in versions if row["score"] is not None]
    primary = next((row["primary"] for row in scored), None) or "primary metric"
    series = [plots.Series(primary, [(row["version"], row["score"]) for row in scored])]
    champion = [(row["version"], row["score"]) for row in scored if row["champion"]]
    if champion:
        series.append(plots.Series("champion", champion))
    baseline = [
        (row["version"], row["baseline"])
        for row in scored
        if row["baseline"] is not None
    ]
    if baseline:
        series.append(plots.Series("trivial baseline", baseline, dashed=True))
    numbers = [row["version"] for row in scored]
    ticks = [(n, f"v{n}") for n in numbers] if len(numbers) <= 15 else None
    span = (min(numbers) - 0.5, max(numbers) + 0.5) if numbers else None
    return plots.line_chart(
        "metric-history",
        series,
        title=f"{primary} by version",
        x_label="version",
        y_label=f"{primary} on held-out rows",
        x_ticks=ticks,
        x_range=span,
        width=620,
    )


def evidence(row: dict[str, Any]) -> dict[str, Any]:
    """The selected version's report as tables and plots."""
    report = row["report"]
    task = report.get("task") or row["record"].task
    calibration = report.get("calibration") or {}
    return {
        "task": task,
        "metrics": metric_rows(report),
        "comparison": comparison_plot(report, task),
        "calibration": calibration_plot(row["version"], calibration),
        "brier": calibration.get("brier"),
        "roc": roc_plot(report) if task != "regression" else None,
        "residuals": residual_plot(report) if task == "regression" else None,
        "residual_summary": report.get("residuals") or {},
        "capacity": report.get("capacity"),
        "groups": group_plots(report, task),
        "gaps": report.get("group_gaps") or {},
        "importance": importance_plot(report.get("importance") or []),
        "importance_scope": report.get("importance_scope") or {},
        "decision": report.get("decision") or {},
        "validation": report.get("validation") or {},
        "evaluated_at": report.get("evaluated_at"),
    }


def comparison_plot(report: dict[str, Any], task: str) -> Markup | None:
    """The version's main metrics beside the baseline's and the champion's then."""
    metrics = report.get("metrics") or {}
    names = [n for n in COMPARED_METRICS.get(task, ()) if metrics.get(n) is not None]
    if not names:
        return None
    decision = report.get("decision") or {}
    others = [("trivial baseline", report.get("baseline") or {})]
    if decision.get("champion_metrics"):
        champion = f"champion v{decision.get('champion_version')}"
        others.append((champion, decision["champion_metrics"]))
    series = [plots.BarSeries(f"v{report.get('version')}", [metrics[n] for n in names])]
    series += [
        plots.BarSeries(label, [values.get(n) for n in names])
        for label, values in others
    ]
    regression = task == "regression"
    return plots.bar_chart(
        "comparison",
        [name.replace("_", " ") for name in names],
        series,
        title="held-out metrics against the baseline and the champion",
        x_label="metric (lower is better)" if regression else "metric",
        y_label="error, in units of the target" if regression else "score",
        y_range=None if regression else (0.0, 1.0),
        width=360,
        height=280,
    )


def metric_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    baseline = report.get("baseline") or {}
    intervals = report.get("intervals") or {}
    return [
        {
            "name": name,
            "value": value,
            "baseline": baseline.get(name),
            "interval": intervals.get(name),
            "primary": name == report.get("primary_metric"),
            "lower_better": name in LOWER_IS_BETTER,
        }
        for name, value in sorted((report.get("metrics") or {}).items())
    ]


def calibration_plot(version: int, calibration: dict[str, Any]) -> Markup | None:
    curve = calibration.get("curve") or []
    points = [
        (p["predicted"], p["observed"])
        for p in curve
        if p.get("predicted") is not None and p.get("observed") is not None
    ]
    if not points:
        return None
    return plots.reliability_chart(
        "calibration", points, title=f"reliability of v{version}'s probabilities"
    )


def roc_plot(report: dict[str, Any]) -> Markup:
    """The version's ROC curve, the champion's on the same students, the diagonal."""
    title = f"ROC curve of v{report.get('version')} on held-out students"
    roc = report.get("roc")
    if roc is None:
        why = _missing(report, "roc", "ROC curve", NO_ROC)
        return plots.empty("roc", title, why, plots.WIDTH, plots.HEIGHT)
    curves = [_roc_curve(f"v{report.get('version')}", roc["candidate"])]
    champion = roc.get("champion")
    if champion:
        curves.append(_roc_curve(f"champion v{champion.get('version')}", champion))
    baseline = (report.get("baseline") or {}).get("roc_auc")
    return plots.roc_chart("roc", curves, title=title, baseline_auc=baseline)


def _roc_curve(name: str, curve: dict[str, Any]) -> plots.RocCurve:
    points = [
        (p["fpr"], p["tpr"])
        for p in curve.get("points") or []
        if p.get("fpr") is not None and p.get("tpr") is not None
    ]
    return plots.RocCurve(name, points, curve.get("auc"))


def residual_plot(report: dict[str, Any]) -> Markup:
    """A sample of the version's residuals against its predictions."""
    title = f"residuals of v{report.get('version')} on held-out students"
    residuals = report.get("residuals")
    if residuals is None:
        why = _missing(report, "residuals", "residuals", "no finite prediction")
        return plots.empty("residuals", title, why, plots.WIDTH, plots.HEIGHT)
    points = [
        (p["predicted"], p["residual"])
        for p in residuals.get("sample") or []
        if p.get("predicted") is not None and p.get("residual") is not None
    ]
    shown = f"{len(points)} of {residuals.get('rows')}"
    label = f"students ({shown})" if residuals.get("sampled") else "students"
    return plots.residual_chart("residuals", points, title=title, label=label)


def _missing(report: dict[str, Any], key: str, what: str, otherwise: str) -> str:
    """Why a report holds no curve under ``key``, in a few plain words."""
    if report.get("metrics") is None:
        return f"No {what}: no students were held out to score this version on."
    if key not in report:
        return f"No {what}: this report was written before reports kept them."
    return f"No {what}: {otherwise}."


def group_plots(report: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """One bar chart per group column (and pair of columns) of the report."""
    metrics = (
        REGRESSOR_GROUP_METRICS if task == "regression" else CLASSIFIER_GROUP_METRICS
    )
    plotted = []
    for column, table in (report.get("groups") or {}).items():
        values = sorted(table)
        notes = [
            f"n={table[v].get('n')}" + (" too few" if table[v].get("too_small") else "")
            for v in values
        ]
        series = [
            plots.BarSeries(
                metric.replace("_", " "), [table[v].get(metric) for v in values]
            )
            for metric in metrics
        ]
        y_range = (0.0, 1.0) if task != "regression" else None
        label = (
            "error, in units of the target"
            if task == "regression"
            else "share of students"
        )
        plotted.append(
            {
                "column": column,
                "plot": plots.bar_chart(
                    f"groups-{column}",
                    values,
                    series,
                    title=f"{', '.join(metrics)} by {column}".replace("_", " "),
                    x_label=column,
                    y_label=label,
                    notes=notes,
                    y_range=y_range,
                ),
                "rows": [{"value": v, **table[v]} for v in values],
            }
        )
    return plotted


def importance_plot(importance: list[dict[str, Any]]) -> Markup | None:
    ranked = [item for item in importance if item.get("importance") is not None]
    ranked = ranked[:FEATURES_SHOWN]
    if not ranked:
        return None
    return plots.hbar_chart(
        "importance",
        [str(item["feature"]) for item in ranked],
        [float(item["importance"]) for item in ranked],
        errors=[float(item.get("std") or 0.0) for item in ranked],
        title="permutation importance of each feature",
        x_label="drop in the primary metric when the feature is shuffled",
    )


# --- queues -------------------------------------------------------------------


def queues(c: Clients, window_min: int) -> dict[str, Any]:
    window_min = window_min if window_min in WINDOWS_MIN else WINDOWS_MIN[1]
    now_view = queues_now(c, record=True)
    try:
        history = samples.history(c.connection, since_s=window_min * 60)
    except redis.RedisError:
        history = []
    return {
        "title": "Queues",
        **now_view,
        "window_min": window_min,
        "windows": WINDOWS_MIN,
        "samples": len(history),
        "depth_plot": depth_plot(history, window_min),
    }


def queues_now(c: Clients, record: bool = False) -> dict[str, Any]:
    """The queue report, or why Redis could not give it."""
    try:
        report = queue_report(c.connection)
        if record:
            samples.record(c.connection, report, samples.PAGE_GAP_S)
    except redis.RedisError as error:
        message = f"Redis is unavailable at REDIS_URL: {error}"
        return {
            "queues": [],
            "workers": [],
            "queue_columns": [],
            "queue_error": message,
        }
    known = {"name", "depth", "consumers"}
    extra = sorted(
        {
            key
            for queue in report["queues"]
            for key, value in queue.items()
            if key not in known and isinstance(value, str | int | float)
        }
    )
    return {
        "queues": report["queues"],
        "workers": report["workers"],
        "queue_columns": extra,
        "queue_error": None,
    }


def depth_plot(history: list[samples.Sample], window_min: int) -> Markup:
    names = sorted({name for sample in history for name in sample.depths})
    series = [
        plots.Series(
            name,
            [(s.at, s.depths.get(name, 0)) for s in history],
            markers=len(history) <= 120,
        )
        for name in names
    ]
    now = time.time()
    low = now - window_min * 60
    if history:  # a gateway up for less than the window: the axis starts at its data
        low = max(low, history[0].at - HISTORY_MARGIN_S)
    top = max([depth for s in history for depth in s.depths.values()] + [4])
    return plots.line_chart(
        "queue-depth",
        series,
        title=f"tasks waiting in each queue, last {window_min} minutes",
        x_label="time (UTC)",
        y_label="tasks waiting",
        x_range=(low, now),
        y_range=(0, top),
        x_ticks=clock_ticks(low, now),
        width=860,
    )


def clock_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks at round clock times, about six of them."""
    step = next(
        s
        for s in (5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
        if (high - low) / s <= 6
    )
    first = (int(low) // step + 1) * step
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    return [
        (t, datetime.fromtimestamp(t, UTC).strftime(fmt))
        for t in range(first, int(high) + 1, step)
    ]


# --- formatting ---------------------------------------------------------------


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def duration(seconds: float | None) -> str:
    """120 ms, 3.2 s, 4 min 05 s, 2 h 10 min."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def when(value: str | float | None) -> str:
    """A stored time as 2026-12-03 17:58:09 UTC."""
    if value is None:
        return "—"
    stamp = parse_time(value) if isinstance(value, str) else float(value)
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"
