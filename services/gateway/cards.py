"""Model cards: what a version is for, what it learned from, how well it does,
for whom, and how it came to serve (or not), in words an educator can read."""

from __future__ import annotations

import re
from typing import Any

from shared.dataset_store import DatasetSchema
from shared.registry import VersionRecord

INTENDED_USE = {
    "classification": (
        "Flags students likely to belong to a class of '{target}' (for example, at "
        "risk) so that staff can offer support early. It supports a person's "
        "judgement; it must not decide on its own about any student."
    ),
    "regression": (
        "Estimates '{target}' for each student so that staff can plan support. The "
        "estimate carries the error shown below; it must not decide on its own "
        "about any student."
    ),
}

# The characters that would turn text into markup here (links, emphasis, code,
# table cells, HTML), escaped with a backslash as CommonMark allows.
_MARKUP = re.compile(r"([\\`*\[\]<>|&~])")
LIMITATIONS = [
    "Trained on one dataset from one period; students unlike those in it may be "
    "scored less accurately.",
    "Per-group figures cover only the group columns named in the job and groups with "
    "enough held-out students; smaller groups are listed as too small.",
    "Correlation is not cause: an important feature is not a reason a student "
    "struggles.",
]


def card(
    record: VersionRecord,
    report: dict[str, Any] | None,
    dataset: DatasetSchema | None,
    history: list[dict[str, Any]],
    champion: int | None,
) -> dict[str, Any]:
    """The card as a JSON document; ``markdown`` renders the same content."""
    report = report or {}
    excluded = [
        name
        for name in (dataset.names if dataset else [])
        if name not in {f.name for f in record.features} and name != record.target
    ]
    return {
        "model": record.model,
        "version": record.version,
        "champion": champion == record.version,
        "intended_use": INTENDED_USE[record.task].format(target=record.target),
        "data": {
            "dataset_id": record.dataset_id,
            "rows": dataset.rows if dataset else None,
            "uploaded_at": dataset.created_at if dataset else None,
            "train_rows": record.rows.get("train"),
            "test_rows": record.rows.get("test"),
            "target": record.target,
            "id_column_pseudonymised": record.id_column,
        },
        "features": [f.model_dump() for f in record.features],
        "excluded_attributes": excluded,
        "algorithm": record.algorithm,
        "seed": record.seed,
        "created_at": record.created_at,
        "primary_metric": report.get("primary_metric"),
        "metrics": report.get("metrics"),
        "intervals": report.get("intervals"),
        "baseline": report.get("baseline"),
        "calibration": report.get("calibration"),
        "capacity": report.get("capacity"),
        "roc": roc_summary(report.get("roc")),
        "residuals": residual_summary(report.get("residuals")),
        "groups": report.get("groups", {}),
        "importance": report.get("importance", []),
        "importance_scope": report.get("importance_scope"),
        "decision": report.get("decision"),
        "limitations": LIMITATIONS,
        "history": history,
        "erasures": record.erasures,
        "deleted_at": record.deleted_at,
    }


def roc_summary(roc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ROC figures a reader compares; the points stay in the report."""
    if not roc or not roc.get("candidate"):
        return None
    champion = roc.get("champion") or {}
    return {
        "auc": roc["candidate"].get("auc"),
        "champion_version": champion.get("version"),
        "champion_auc": champion.get("auc"),
        "rows": roc.get("rows"),
        "positives": roc.get("positives"),
    }


def residual_summary(residuals: dict[str, Any] | None) -> dict[str, Any] | None:
    """How far estimates fall from actual values; the sampled pairs stay behind."""
    if not residuals or residuals.get("mean") is None:
        return None
    return {
        key: residuals.get(key)
        for key in ("definition", "rows", "mean", "std", "quantiles")
    }


def markdown(document: dict[str, Any]) -> str:
    lines = [f"# Model card: {document['model']} v{document['version']}", ""]
    status = "serves predictions (champion)" if document["champion"] else "not serving"
    lines += [
        f"Status: {status}. Created {document['created_at']} with "
        f"`{document['algorithm']}`, seed {document['seed']}.",
        "",
    ]
    lines += ["## Intended use", "", document["intended_use"], ""]
    lines += _data_section(document)
    lines += _metrics_section(document)
    lines += _groups_section(document["groups"])
    lines += _importance_section(
        document["importance"], document.get("importance_scope")
    )
    lines += ["## Limitations", ""] + [f"- {text}" for text in document["limitations"]]
    lines += ["", "## Decision history", ""] + _history_lines(document)
    return "\n".join(lines) + "\n"


def _data_section(document: dict[str, Any]) -> list[str]:
    data = document["data"]
    features = ", ".join(
        f"{_code(f['name'])} ({f['type']})" for f in document["features"]
    )
    excluded = (
        ", ".join(_code(name) for name in document["excluded_attributes"]) or "none"
    )
    return [
        "## Data",
        "",
        f"- Dataset `{data['dataset_id']}` (content hash), {data['rows']} rows, "
        f"uploaded {data['uploaded_at']}; {data['train_rows']} rows to train, "
        f"{data['test_rows']} held out to test{_since(document)}.",
        f"- Target: {_code(data['target'])}.",
        f"- Student ids: {_ids_line(data['id_column_pseudonymised'])}.",
        f"- Features: {features}.",
        f"- Columns not used as features: {excluded}.",
        "",
    ]


def _since(document: dict[str, Any]) -> str:
    """The dataset's rows when the version was trained, if erasures changed them."""
    data = document["data"]
    if not document["erasures"] or data.get("rows") is None:
        return ""
    return (
        f"; it held {data['rows'] + _erased_rows(document)} rows when this version "
        "was trained, before the erasures listed below"
    )


def _erased_rows(document: dict[str, Any]) -> int:
    return sum(int(erasure.get("rows") or 0) for erasure in document["erasures"])


def _ids_line(id_column: str | None) -> str:
    return f"pseudonymised ({_code(id_column)})" if id_column else "none in the data"


def _metrics_section(document: dict[str, Any]) -> list[str]:
    metrics = document["metrics"] or {}
    if not metrics:
        return ["## Quality", "", "Not evaluated yet.", ""]
    baseline = document["baseline"] or {}
    intervals = document["intervals"] or {}
    lines = [
        "## Quality on held-out students",
        "",
        "| metric | value | 95% interval | trivial baseline |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in sorted(metrics.items()):
        span = intervals.get(name)
        shown = f"{_num(span.get('low'))} – {_num(span.get('high'))}" if span else ""
        lines.append(
            f"| {name} | {_num(value)} | {shown} | {_num(baseline.get(name))} |"
        )
    capacity = document.get("capacity")
    if capacity:
        lines += [
            "",
            f"Flagging the {capacity['share']:.0%} of students most at risk "
            f"({capacity['flagged']}): precision {_num(capacity['precision'])}, "
            f"recall {_num(capacity['recall'])}.",
        ]
    calibration = document.get("calibration")
    if calibration:
        lines += [f"Calibration: Brier score {_num(calibration['brier'])}."]
    lines += _roc_lines(document.get("roc"))
    lines += _residual_lines(document.get("residuals"))
    return lines + [""]


def _roc_lines(roc: dict[str, Any] | None) -> list[str]:
    if not roc:
        return []
    line = (
        f"Ranking: area under the ROC curve {_num(roc['auc'])} on {roc['rows']} "
        f"held-out students, {roc['positives']} of them positive (0.5 is chance)"
    )
    if roc.get("champion_auc") is not None:
        line += (
            f"; the champion then serving, v{roc['champion_version']}, "
            f"reached {_num(roc['champion_auc'])} on the same students"
        )
    return ["", line + "."]


def _residual_lines(residuals: dict[str, Any] | None) -> list[str]:
    if not residuals:
        return []
    quantiles = residuals.get("quantiles") or {}
    lines = [
        "",
        f"Errors (actual minus estimate) on {residuals['rows']} held-out students: "
        f"mean {_num(residuals['mean'])}, standard deviation "
        f"{_num(residuals['std'])}.",
    ]
    if "p25" in quantiles and "p75" in quantiles:
        lines.append(
            f"Half of the errors lay between {_num(quantiles['p25'])} and "
            f"{_num(quantiles['p75'])}, nine in ten between "
            f"{_num(quantiles.get('p05'))} and {_num(quantiles.get('p95'))}; "
            "below zero, the model over-estimated the student."
        )
    return lines


def _groups_section(groups: dict[str, Any]) -> list[str]:
    if not groups:
        return ["## Groups", "", "No group columns were named for this version.", ""]
    lines = ["## Groups", ""]
    for column, values in groups.items():
        names = sorted(
            {key for v in values.values() for key in v if key != "too_small"}
        )
        lines += [
            f"### {_text(column)}",
            "",
            "| group | " + " | ".join(names) + " |",
            "| --- |" + " --- |" * len(names),
        ]
        for value, figures in values.items():
            if figures.get("too_small"):
                lines.append(
                    f"| {_text(value)} | n={figures['n']}: too small to report |"
                    + " |" * (len(names) - 1)
                )
                continue
            cells = " | ".join(_num(figures.get(name)) for name in names)
            lines.append(f"| {_text(value)} | {cells} |")
        lines.append("")
    return lines


def _importance_section(
    importance: list[dict[str, Any]], scope: dict[str, Any] | None
) -> list[str]:
    if not importance:
        return []
    lines = [
        "## What the model relies on",
        "",
        "Drop in the primary metric when a feature's values are shuffled:",
        "",
    ]
    lines += [
        f"- {_code(item['feature'])}: {_num(item['importance'])}"
        for item in importance
        if item["importance"] is not None
    ]
    if scope and not scope.get("complete", True):
        lines += ["", str(scope["note"])]
    return lines + [""]


def _history_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    decision = document.get("decision")
    if decision:
        verdict = "promoted" if decision["promoted"] else "not promoted"
        lines.append(
            f"- Evaluation: {verdict}. "
            + "; ".join(_text(reason) for reason in decision["reasons"])
            + "."
        )
    for entry in document["history"]:
        lines.append(
            f"- {entry['at']}: {entry['action']} v{entry.get('version')} by "
            f"{_text(entry['actor'])} — {_text(entry['reason'])}"
        )
    if document["erasures"]:
        lines.append(
            f"- Students' data erased after training: {len(document['erasures'])} "
            "request(s); retrain to remove their influence."
        )
    return lines or ["- None yet."]


def _text(value: Any) -> str:
    """Text from the data or a caller, on one line, with no Markdown or HTML in it."""
    return _MARKUP.sub(r"\\\1", " ".join(str(value).split()))


def _code(value: Any) -> str:
    """A name as a code span, on one line, fenced longer than any backticks in it."""
    line = " ".join(str(value).split())
    runs = [len(run) for run in re.findall(r"`+", line)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
