"""Rows per second of batch scoring, from ``POST .../batch`` to the job done.

``measure(api, model)`` uploads 100,000 students resampled (with a seed) from
``data/chem97.csv``, with fresh ids in ``student`` and the label ``at_risk``
(a score of 4 or less) as the benchmark adds it, asks for a batch job of
``model``'s champion on them, and waits for it to be done. The time runs from
the POST to the first status read that says ``done``, so it holds the
queueing, reading the table from S3, scoring and writing the CSV to S3. The
CSV is then downloaded, untimed, to check that it has a row per student.
``scripts/bench.py`` calls it with a client of the tenant whose ``bench-lr``
it trained.

Alone, ``python -m scripts.bench_batch`` starts a private stack on free
ports, trains ``bench-lr`` (logistic regression on gender, age and
gcsescore), measures, and stops the stack; with ``--url`` (and
``--api-key`` when authentication is on) it uses a running stack instead,
training ``bench-lr`` there if it has no champion. The last line of
standard output is one JSON object.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

import httpx
import numpy as np
import pandas as pd
import typer

from scripts import stack

DATA = stack.ROOT / "data" / "chem97.csv"
LOGS = stack.RUN_DIR / "bench-batch"
ROWS = 100_000
SEED = 2024
TARGET = "at_risk"
ID_COLUMN = "student"
FEATURES = ["gender", "age", "gcsescore"]
MODEL = "bench-lr"
POLL_S = 0.05
JOB_TIMEOUT_S = 300.0

cli = typer.Typer(add_completion=False, help=__doc__)


def measure(api: httpx.Client, model: str) -> dict[str, Any]:
    """Score ``ROWS`` students with ``model``'s champion; rows per second."""
    dataset = upload(api, students(ROWS))

    started = time.perf_counter()
    job = check(api.post(f"/v1/models/{model}/batch", json={"dataset_id": dataset}))
    record = wait_until_finished(api, job["id"], "done")
    seconds = time.perf_counter() - started

    check_predictions(api, record, ROWS)
    return {
        "batch_rows": ROWS,
        "batch_seconds": round(seconds, 3),
        "batch_rows_per_s": round(ROWS / seconds),
    }


def students(count: int) -> bytes:
    """``count`` rows drawn from chem97 with a seed, each with an id of its own."""
    frame = pd.read_csv(DATA)
    drawn = np.random.default_rng(SEED).integers(0, len(frame), count)
    table = frame.iloc[drawn].reset_index(drop=True)
    table[ID_COLUMN] = np.arange(1, count + 1)
    table[TARGET] = (table["score"] <= 4).astype(int)
    return table.to_csv(index=False).encode()


def upload(api: httpx.Client, data: bytes) -> str:
    answer = api.post(
        "/v1/datasets",
        data={"id_column": ID_COLUMN},
        files={"file": ("students.csv", data, "text/csv")},
    )
    return str(check(answer)["id"])


def wait_until_finished(api: httpx.Client, job_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        record = check(api.get(f"/v1/jobs/{job_id}"))
        if record["status"] == wanted:
            return record
        if record["status"] in ("failed", "rejected"):
            raise SystemExit(f"bench-batch: job {job_id} {record['status']}: {record}")
        time.sleep(POLL_S)
    raise SystemExit(f"bench-batch: job {job_id} not {wanted} in {JOB_TIMEOUT_S:.0f} s")


def check_predictions(api: httpx.Client, record: dict[str, Any], rows: int) -> None:
    answer = api.get(f"/v1/jobs/{record['id']}/predictions")
    if answer.is_error:
        check(answer)
    table = pd.read_csv(io.BytesIO(answer.content))
    if len(table) != rows or table["row"].tolist() != list(range(1, rows + 1)):
        raise SystemExit(
            f"bench-batch: the CSV of job {record['id']} has {len(table)} rows, "
            f"expected rows 1 to {rows}"
        )


def check(answer: httpx.Response) -> dict[str, Any]:
    if answer.is_error:
        raise SystemExit(
            f"bench-batch: {answer.request.method} {answer.request.url}: "
            f"{answer.status_code} {answer.text[:500]}"
        )
    return dict(answer.json())


def ensure_model(api: httpx.Client, model: str) -> None:
    """Train ``model`` on chem97 as the benchmark does, unless it has a champion."""
    known = api.get(f"/v1/models/{model}")
    if known.status_code == 200 and known.json().get("champion") is not None:
        return
    frame = pd.read_csv(DATA)
    frame[TARGET] = (frame["score"] <= 4).astype(int)
    dataset = upload(api, frame.to_csv(index=False).encode())
    job = check(
        api.post(
            "/v1/jobs",
            json={
                "model": model,
                "dataset_id": dataset,
                "target": TARGET,
                "features": FEATURES,
                "algorithm": "linear",
            },
        )
    )
    wait_until_finished(api, job["id"], "deployed")


@cli.command()
def main(
    url: str = typer.Option("", help="a running gateway; empty: start a private stack"),
    api_key: str = typer.Option("", envvar="EDUML_API_KEY", help="tenant API key"),
    model: str = typer.Option(MODEL, help="the model scoring the students"),
) -> None:
    private = None
    try:
        if not url:
            private = stack.start_private("bench-batch", LOGS)
            url = private.base_url
            admin = {"Authorization": f"Bearer {private.settings.admin_api_key}"}
            tenant = check(
                httpx.post(
                    f"{url}/v1/tenants",
                    json={"name": "bench"},
                    headers=admin,
                    timeout=30,
                )
            )
            api_key = tenant["api_key"]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as api:
            ensure_model(api, model)
            line = measure(api, model)
    finally:
        if private is not None:
            private.close()
    print(
        f"batch scoring: {line['batch_rows']} rows in {line['batch_seconds']} s",
        file=sys.stderr,
    )
    print(json.dumps(line))


if __name__ == "__main__":
    cli()
