"""Steps an LMS takes against the gateway, shared by the integration tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINISHED = {"deployed", "rejected", "done", "failed"}
JOB_TIMEOUT_S = 180.0


def upload(
    api: httpx.Client, data: bytes, name: str = "students.csv", **form: str
) -> httpx.Response:
    return api.post("/v1/datasets", files={"file": (name, data, "text/csv")}, data=form)


def upload_ok(api: httpx.Client, data: bytes, **form: str) -> dict[str, Any]:
    answer = upload(api, data, **form)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def start_job(api: httpx.Client, **request: Any) -> dict[str, Any]:
    answer = api.post("/v1/jobs", json=request)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def wait_for_job(
    api: httpx.Client, job_id: str, timeout_s: float = JOB_TIMEOUT_S
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = api.get(f"/v1/jobs/{job_id}").json()
        if record["status"] in FINISHED:
            return dict(record)
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {record['status']} after {timeout_s} s")


def train(api: httpx.Client, **request: Any) -> dict[str, Any]:
    return wait_for_job(api, start_job(api, **request)["id"])
