"""Queue health as an operator sees it: a queue with jobs and no consumer is critical."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import DATA
from tests.faults.conftest import wait_for
from tests.integration.flow import upload_ok, wait_for_job

pytestmark = pytest.mark.faults
JOBS = 20


def training_queue(client) -> dict:
    queues = client.get("/v1/queues").json()["queues"]
    return next(queue for queue in queues if queue["name"] == "training")


def metric(client, name: str, queue: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^{name}{{queue="{queue}"}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name} for {queue} missing from /metrics"
    return float(found.group(1))


@pytest.mark.stack_env(STEP_DELAY_S="0")
def test_stopped_worker_makes_the_queue_critical_until_it_drains(private_stack, client):
    dataset = upload_ok(client, (DATA / "exam.csv").read_bytes())
    private_stack.kill_worker("training")
    wait_for(
        lambda: not training_queue(client)["consumers"], 40, "the worker to be gone"
    )

    job_ids = [
        client.post(
            "/v1/jobs",
            json={
                "model": f"queued-{i}",
                "dataset_id": dataset["id"],
                "target": "normexam",
                "features": ["standLRT"],
                "algorithm": "linear",
            },
        ).json()["id"]
        for i in range(JOBS)
    ]
    first = training_queue(client)
    time.sleep(1.5)
    later = training_queue(client)

    assert first["depth"] == JOBS
    assert first["status"] == "critical"
    assert later["oldest_age_s"] > first["oldest_age_s"] > 0
    assert metric(client, "eduml_queue_depth", "training") == JOBS
    assert metric(client, "eduml_queue_critical", "training") == 1.0
    assert metric(client, "eduml_queue_consumers", "training") == 0.0

    private_stack.start_worker("training")
    # Read while the queue drains: once every job has also been evaluated, the
    # last training may be more than the rate's one-minute window ago.
    wait_for(
        lambda: training_queue(client)["rate_out_per_min"] > 0,
        120,
        "tasks taken from the training queue to show in its rate",
    )
    finished = [wait_for_job(client, job_id, timeout_s=180) for job_id in job_ids]
    drained = training_queue(client)

    assert all(job["status"] == "deployed" for job in finished)
    assert drained["depth"] == 0 and drained["status"] == "ok"
    assert metric(client, "eduml_queue_critical", "training") == 0.0
