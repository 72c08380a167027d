"""Rich tables of what the gateway answers: jobs, models, versions, queues.

Every view takes the API's JSON as it is and copes with fields it lacks, so
that an older or newer gateway still gives a readable table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

MISSING = "—"
STATUS_STYLES = {
    "queued": "cyan",
    "training": "yellow",
    "evaluating": "magenta",
    "scoring": "blue",
    "deployed": "bold green",
    "done": "bold green",
    "rejected": "bold yellow",
    "failed": "bold red",
    "ok": "green",
}
CHAMPION_MARK = "★"
RESULT_CHARS = 40  # of a job's error in the list; `eduml job` shows all of it
COMPARED_VERSIONS = 6  # the newest versions whose metrics are set side by side


def cell(value: Any) -> str:
    """One value as table text: numbers rounded, lists joined, absence a dash."""
    if value is None or value == []:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={cell(item)}" for key, item in value.items())
    return str(value)


def status_text(status: str | None) -> Text:
    return Text(status or MISSING, style=STATUS_STYLES.get(status or "", ""))


def moment(iso: str | None, short: bool = False) -> str:
    """An API timestamp (ISO 8601, UTC) in local time, to the second or minute."""
    if not iso:
        return MISSING
    try:
        local = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    return local.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _second(pair: tuple[str, str]) -> str:
    return pair[1]


# --- jobs -----------------------------------------------------------------------


def jobs_table(jobs: list[dict[str, Any]], caption: Text | None = None) -> Table:
    """Newest first; the version follows the model; result: a score or the error."""
    table = Table(
        title="jobs", caption=caption, caption_justify="left", box=box.SIMPLE_HEAD
    )
    for name in ("job", "model", "status", "queued", "result"):
        table.add_column(name, no_wrap=name in ("job", "status", "queued"))
    for job in jobs:
        table.add_row(
            cell(job.get("id")),
            label(job),
            status_text(job.get("status")),
            moment((job.get("timestamps") or {}).get("queued"), short=True),
            shorten(job.get("error") or primary_metric(job), RESULT_CHARS),
        )
    if not jobs:
        table.add_row("no jobs yet", "", "", "", "")
    return table


def job_view(job: dict[str, Any]) -> RenderableType:
    """One job: its request, state and times, then metrics and decision."""
    table = Table(title=f"job {job.get('id')}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("status", status_text(job.get("status")))
    for name in ("model", "version", "dataset_id", "target", "task", "algorithm"):
        table.add_row(name, cell(job.get(name)))
    for name in ("features", "attempts", "worker", "error", "notes"):
        table.add_row(name, cell(job.get(name)))
    for state, at in sorted((job.get("timestamps") or {}).items(), key=_second):
        table.add_row(f"{state} at", moment(at))
    parts: list[RenderableType] = [table]
    if job.get("metrics"):
        parts.append(metrics_table(job["metrics"], label(job)))
    if job.get("decision"):
        parts.append(decision_text(job["decision"]))
    return Group(*parts)


def label(job: dict[str, Any]) -> str:
    version = job.get("version")
    return f"{job.get('model')} v{version}" if version else str(job.get("model"))


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("held-out metric")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name, cell(value))
    return table


def decision_text(decision: dict[str, Any]) -> Text:
    promoted = decision.get("promoted")
    text = Text("decision: ")
    text.append("promoted" if promoted else "not promoted", style="bold")
    text.append(f" — {decision.get('reason') or MISSING}")
    for reason in (decision.get("reasons") or [])[1:]:
        text.append(f"\n  · {reason}")
    return text


# --- models and versions ----------------------------------------------------------


def models_table(models: list[dict[str, Any]]) -> Table:
    table = Table(title="models")
    for name in ("model", "champion", "versions", "latest version"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for model in models:
        table.add_row(
            model.get("model", MISSING),
            version_label(model.get("champion")),
            cell(model.get("versions")),
            version_label(model.get("latest_version")),
        )
    if not models:
        table.add_row("no models yet", "", "", "")
    return table


def model_view(model: dict[str, Any]) -> RenderableType:
    """A model's versions, the champion marked, then their metrics side by side."""
    versions = model.get("versions") or []
    title = f"{model.get('model')}: champion {version_label(model.get('champion'))}"
    parts: list[RenderableType] = [versions_table(versions, title)]
    compared = [v for v in versions if v.get("metrics")][-COMPARED_VERSIONS:]
    if compared:
        parts.append(metrics_comparison(compared))
    return Group(*parts)


def versions_table(versions: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, caption=f"{CHAMPION_MARK} champion")
    for name in ("version", "algorithm", "created", "primary metric"):
        table.add_column(name, no_wrap=True)
    table.add_column("decision")
    for version in versions:
        table.add_row(
            _marked(version),
            cell(version.get("algorithm")),
            moment(version.get("created_at"), short=True),
            primary_metric(version),
            _version_note(version),
        )
    return table


def metrics_comparison(versions: list[dict[str, Any]]) -> Table:
    table = Table()
    table.add_column("held-out metric")
    for version in versions:
        table.add_column(_marked(version), justify="right")
    names = sorted({name for v in versions for name in v["metrics"]})
    for name in names:
        table.add_row(name, *[cell(v["metrics"].get(name)) for v in versions])
    return table


def primary_metric(record: dict[str, Any]) -> str:
    """``r2 0.3779``: the metric that decided a job's or a version's promotion."""
    name = (record.get("decision") or {}).get("primary_metric")
    if not name:
        return MISSING
    return f"{name} {cell((record.get('metrics') or {}).get(name))}"


def _version_note(version: dict[str, Any]) -> str:
    if version.get("deleted_at"):
        return f"deleted {version['deleted_at']}"
    decision = version.get("decision")
    if not decision:
        return "not evaluated yet"
    verdict = "promoted" if decision.get("promoted") else "not promoted"
    return f"{verdict}: {decision.get('reason') or MISSING}"


def _marked(version: dict[str, Any]) -> str:
    mark = f" {CHAMPION_MARK}" if version.get("champion") else ""
    return f"v{version.get('version')}{mark}"


def version_label(number: Any) -> str:
    return MISSING if number is None else f"v{number}"


# --- queues and workers -------------------------------------------------------------

QUEUE_COLUMNS = ("name", "depth", "consumers")
WORKER_COLUMNS = ("name", "queues", "pid", "last_heartbeat_s")
WORKER_HIDDEN = frozenset({"at", "started"})  # epoch seconds, unreadable as they are


def queues_view(report: dict[str, Any], caption: Text | None = None) -> Group:
    queues = records_table("queues", report.get("queues") or [], QUEUE_COLUMNS)
    workers = records_table(
        "workers", report.get("workers") or [], WORKER_COLUMNS, WORKER_HIDDEN
    )
    workers.caption = caption
    workers.caption_justify = "left"
    return Group(queues, workers)


def records_table(
    title: str,
    records: list[dict[str, Any]],
    first: Iterable[str],
    hidden: frozenset[str] = frozenset(),
) -> Table:
    """``first`` columns, then any other field a record has; absent ones dashed."""
    columns = _columns(records, list(first), hidden)
    table = Table(title=title)
    for name in columns:
        table.add_column(name.replace("_", " "), justify=_justify(records, name))
    for record in records:
        table.add_row(*[_record_cell(name, record.get(name)) for name in columns])
    if not records:
        table.add_row(f"no {title}", *[""] * (len(columns) - 1))
    return table


def _columns(
    records: list[dict[str, Any]], first: list[str], hidden: frozenset[str]
) -> list[str]:
    columns = list(first)
    for record in records:
        columns += [name for name in record if name not in columns]
    return [name for name in columns if name not in hidden]


def _justify(records: list[dict[str, Any]], name: str) -> Any:
    numeric = any(
        isinstance(r.get(name), int | float) and not isinstance(r.get(name), bool)
        for r in records
    )
    return "right" if numeric else "left"


def _record_cell(name: str, value: Any) -> Text | str:
    if name == "status":
        return status_text(None if value is None else str(value))
    if name == "consumers" and value in ([], 0):
        return Text("none", style="bold red")
    if name.endswith("_s") and isinstance(value, int | float):
        return f"{value:,.1f}"
    return cell(value)
