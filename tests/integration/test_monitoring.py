"""What operators watch: job costs, Prometheus metrics, JSON logs with job context."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import ARTIFACTS, DATA
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration


@pytest.fixture
def trained(api, model_name) -> dict:
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    return train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT", "sex"],
        algorithm="linear",
    )


def test_every_job_carries_the_cost_of_its_steps(trained):
    costs = trained["costs"]

    assert set(costs) == {"training", "evaluation"}
    for step in costs.values():
        assert step["wall_s"] > 0
        assert step["cpu_s"] > 0
        assert step["peak_memory_mib"] > 50


def test_metrics_expose_requests_queues_jobs_and_worker_figures(
    api, admin_api, trained, model_name
):
    api.post(
        f"/v1/models/{model_name}/predict",
        json={"instances": [{"standLRT": 0.3, "sex": "F"}]},
    )

    # The serving worker writes its counts within a second (shared/tally.py).
    text = metrics_once(admin_api, "eduml_inference_seconds_count")

    assert (
        'eduml_http_requests_total{method="POST",route="/v1/models/{model}/predict"'
        in text
    )
    assert "eduml_http_request_seconds_bucket" in text
    assert 'eduml_queue_depth{queue="training"}' in text
    assert 'eduml_job_step_seconds_count{step="training"}' in text
    assert (
        "eduml_job_step_peak_memory_bytes_bucket{le=" in text
        or 'eduml_job_step_peak_memory_bytes_bucket{step="training"' in text
    )
    assert "eduml_inference_seconds_count" in text
    assert 'eduml_jobs_finished_total{status="deployed"}' in text
    assert f'model="{model_name}"' in text
    assert 'eduml_worker_up{worker="test-training@' in text


def test_metrics_are_for_operators_only_with_authentication_on(
    api, gateway_url, trained
):
    keyless = httpx.get(f"{gateway_url}/metrics")
    tenant_key = api.get("/metrics")

    assert keyless.status_code == tenant_key.status_code == 401
    assert "missing bearer token" in keyless.json()["error"]["message"]
    assert "needs METRICS_TOKEN or the admin" in tenant_key.json()["error"]["message"]


def metrics_once(api, expected: str, within_s: float = 10.0) -> str:
    """The /metrics text, as soon as it shows ``expected`` (or at the deadline)."""
    deadline = time.monotonic() + within_s
    text = api.get("/metrics").text
    while expected not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = api.get("/metrics").text
    return text


def test_worker_logs_are_json_lines_with_the_job_context(trained):
    lines = (ARTIFACTS / "logs" / "worker-training.log").read_text().splitlines()

    events = [
        json.loads(line)
        for line in lines
        if trained["id"] in line and line.startswith("{")
    ]

    assert events, "no JSON log line names the job"
    assert all(event["job_id"] == trained["id"] for event in events)
    assert {"ts", "level", "logger", "message", "tenant", "queue"} <= set(events[0])


def test_queues_report_health_fields(api):
    report = api.get("/v1/queues").json()

    for queue in report["queues"]:
        assert {
            "name",
            "depth",
            "oldest_age_s",
            "unacked",
            "consumers",
            "rate_in_per_min",
            "rate_out_per_min",
            "status",
        } <= set(queue)
        assert queue["status"] in {"ok", "warning", "critical"}
    for worker in report["workers"]:
        assert {"name", "queues", "alive", "last_heartbeat_s", "active"} <= set(worker)
