"""The main job, as an LMS would run it against a running stack.

Uploads the A-level chemistry results of 31,022 students (data/chem97.csv)
with the label an LMS sends (at risk: a score of 4 or less), enqueues a
training job (schools kept whole on either side of the split, a per-gender
report), follows it, prints the evaluation, the promotion decision and the
model card, asks for predictions for a few students, and prints as its last
line one JSON object summing the run up.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from shared.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data" / "chem97.csv"
MODEL = "chem97-at-risk"
FEATURES = ["age", "gcsescore"]
GROUP_COLUMNS = ["gender"]
GROUP_SPLIT_COLUMN = "school"
POLL_S = 0.5
JOB_TIMEOUT_S = 240.0
STUDENTS = [
    {"student": "demo-1", "gender": "F", "age": 2, "gcsescore": 7.8},
    {"student": "demo-2", "gender": "M", "age": -4, "gcsescore": 5.1},
    {"student": "demo-3", "gender": "F", "age": 0, "gcsescore": 4.2},
    {"student": "demo-4", "gender": "M", "age": 5, "gcsescore": 6.4},
]

console = Console(stderr=True)


def labelled_table() -> bytes:
    frame = pd.read_csv(DATA)
    frame["at_risk"] = (frame["score"] <= 4).astype(int)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def check(answer: httpx.Response) -> dict[str, Any]:
    if answer.is_error:
        raise SystemExit(
            f"{answer.request.method} {answer.request.url}: "
            f"{answer.status_code} {answer.text}"
        )
    return dict(answer.json())


def check_text(answer: httpx.Response) -> str:
    if answer.is_error:
        raise SystemExit(
            f"{answer.request.method} {answer.request.url}: "
            f"{answer.status_code} {answer.text}"
        )
    return answer.text


def follow(api: httpx.Client, job_id: str) -> dict[str, Any]:
    seen: set[str] = set()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with console.status("waiting for the job…") as status:
        while time.monotonic() < deadline:
            job = check(api.get(f"/v1/jobs/{job_id}"))
            if job["status"] not in seen:
                seen.add(job["status"])
                console.log(f"job {job_id}: [bold]{job['status']}[/]")
                status.update(f"job is {job['status']}…")
            if job["status"] in {"deployed", "rejected", "failed"}:
                return job
            time.sleep(POLL_S)
    raise SystemExit(f"job {job_id} did not finish within {JOB_TIMEOUT_S:.0f} s")


def show_evaluation(job: dict[str, Any]) -> None:
    table = Table(title=f"{job['model']} v{job['version']} on held-out students")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted((job["metrics"] or {}).items()):
        table.add_row(name, "—" if value is None else f"{value:.4f}")
    console.print(table)
    decision = job["decision"] or {}
    verdict = "promoted" if decision.get("promoted") else "not promoted"
    console.print(f"decision: [bold]{verdict}[/] — {decision.get('reason')}")


def show_predictions(answer: dict[str, Any]) -> None:
    table = Table(title=f"predictions of {answer['model']} v{answer['version']}")
    for column in ("student", "at risk", "probability", "main reason"):
        table.add_column(column)
    for student, label, probabilities, reasons in zip(
        answer["ids"],
        answer["predictions"],
        answer["probabilities"],
        answer["explanations"],
        strict=True,
    ):
        top = reasons[0]
        reason = f"{top['feature']} ({top['contribution']:+.2f})"
        table.add_row(
            str(student),
            "yes" if label == 1 else "no",
            f"{probabilities['1']:.2f}",
            reason,
        )
    console.print(table)


def main() -> None:
    settings = Settings()
    base_url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    with httpx.Client(base_url=base_url, timeout=60) as api:
        console.rule("1. upload the students' records")
        dataset = check(
            api.post(
                "/v1/datasets",
                files={"file": ("chem97.csv", labelled_table(), "text/csv")},
                data={"id_column": "student"},
            )
        )
        console.log(
            f"dataset {dataset['id']}: {dataset['rows']} rows, "
            f"{len(dataset['columns'])} columns, student ids pseudonymised"
        )

        console.rule("2. enqueue a training job")
        queued = check(
            api.post(
                "/v1/jobs",
                json={
                    "model": MODEL,
                    "dataset_id": dataset["id"],
                    "target": "at_risk",
                    "features": FEATURES,
                    "algorithm": "auto",
                    "group_columns": GROUP_COLUMNS,
                    "group_split_column": GROUP_SPLIT_COLUMN,
                },
            )
        )
        job = follow(api, queued["id"])
        if job["status"] == "failed":
            raise SystemExit(f"job failed: {job['error']}")

        console.rule("3. evaluation and promotion")
        show_evaluation(job)

        console.rule("4. the model card")
        card = api.get(f"/v1/models/{MODEL}/versions/{job['version']}/card")
        console.print(Markdown(check_text(card)))

        console.rule("5. predictions from the champion")
        answer = check(
            api.post(
                f"/v1/models/{MODEL}/predict",
                json={"instances": STUDENTS, "explain": True},
            )
        )
        show_predictions(answer)

    console.print(
        f"The stack keeps running: API at {base_url}/docs; stop it with 'make down'."
    )
    summary = {
        "status": job["status"],
        "model": MODEL,
        "version": job["version"],
        "champion": answer["version"],
        "metrics": job["metrics"],
        "decision": job["decision"]["reason"],
        "predictions": [
            {"student": student, "at_risk": label, "probability": probabilities["1"]}
            for student, label, probabilities in zip(
                answer["ids"],
                answer["predictions"],
                answer["probabilities"],
                strict=True,
            )
        ],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
