"""Faults: killed workers, a restarted Redis, an S3 outage. Nothing is lost.

Each test runs its own Redis, SeaweedFS, gateway and workers (see conftest).
Every training and evaluation step waits a few seconds first, so a worker
can be killed in the middle of one.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import DATA
from tests.faults.conftest import PrivateStack, wait_for
from tests.integration.flow import upload_ok, wait_for_job

pytestmark = pytest.mark.faults

REQUEST = {"target": "normexam", "features": ["standLRT", "sex"], "algorithm": "linear"}


def start(client: httpx.Client, model: str) -> str:
    dataset = upload_ok(client, (DATA / "exam.csv").read_bytes())
    answer = client.post(
        "/v1/jobs", json={"model": model, "dataset_id": dataset["id"], **REQUEST}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def status_is(client: httpx.Client, job_id: str, status: str):  # type: ignore[no-untyped-def]
    return lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == status


def test_c01_killed_training_worker_job_runs_again_exactly_once(private_stack, client):
    job_id = start(client, "c01")
    wait_for(status_is(client, job_id, "training"), 60, "training")

    private_stack.kill_worker("training")
    private_stack.start_worker("training")
    job = wait_for_job(client, job_id, timeout_s=120)

    assert job["status"] == "deployed", job
    assert job["attempts"] == 2
    assert any(
        "previous worker" in note and "lost during training" in note
        for note in job["notes"]
    )
    versions = client.get("/v1/models/c01").json()["versions"]
    assert [v["version"] for v in versions] == [1]


def test_killed_evaluation_worker_job_is_evaluated_again(private_stack, client):
    job_id = start(client, "killed-eval")
    wait_for(status_is(client, job_id, "evaluating"), 60, "evaluating")
    wait_for(
        lambda: (
            client.get(f"/v1/jobs/{job_id}").json()["worker"]
            and "evaluation" in client.get(f"/v1/jobs/{job_id}").json()["worker"]
        ),
        30,
        "an evaluation worker on the job",
    )

    private_stack.kill_worker("evaluation")
    private_stack.start_worker("evaluation")
    job = wait_for_job(client, job_id, timeout_s=120)

    assert job["status"] == "deployed", job
    assert job["attempts"] == 2
    assert any("lost during evaluating" in note for note in job["notes"])


def test_c03_job_whose_worker_dies_twice_fails_for_good(private_stack, client):
    job_id = start(client, "c03")

    for attempt in (1, 2):
        wait_for(training_attempt(client, job_id, attempt), 90, f"attempt {attempt}")
        wait_for(
            lambda: private_stack.kill_pool_children("training"), 30, "a pool child"
        )
    job = wait_for_job(client, job_id, timeout_s=120)

    assert job["status"] == "failed", job
    assert job["attempts"] == 2
    assert "not retried again" in job["error"]
    assert "out of memory" in job["error"]
    assert client.get("/v1/models/c03").status_code == 404


def training_attempt(client: httpx.Client, job_id: str, attempt: int):  # type: ignore

    def check() -> bool:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job["status"] == "training" and job["attempts"] == attempt

    return check


def test_killed_serving_worker_is_replaced_and_answers(private_stack, client):
    job_id = start(client, "serving")
    wait_for_job(client, job_id, timeout_s=120)
    instance = {"instances": [{"standLRT": 0.5, "sex": "F"}]}
    before = client.post("/v1/models/serving/predict", json=instance).json()

    private_stack.kill_worker("serving")
    started = time.monotonic()
    orphaned = client.post("/v1/models/serving/predict", json=instance)
    waited = time.monotonic() - started
    private_stack.start_worker("serving")
    after = wait_for(
        lambda: _predict_ok(client, "serving", instance), 60, "a prediction"
    )

    assert orphaned.status_code == 504
    assert "no serving worker answered" in orphaned.json()["error"]["message"]
    assert waited < 10
    assert after["predictions"] == before["predictions"]


def test_c04_two_workers_share_the_jobs_instead_of_one_hoarding_them(
    private_stack, client
):
    private_stack.start_extra_worker("training", "faults-training-2")
    wait_for(
        lambda: (
            len(
                next(
                    q
                    for q in client.get("/v1/queues").json()["queues"]
                    if q["name"] == "training"
                )["consumers"]
            )
            == 2
        ),
        60,
        "two training consumers",
    )

    job_ids = [start(client, f"c04-{i}") for i in range(4)]
    jobs = [wait_for_job(client, job_id, timeout_s=180) for job_id in job_ids]

    trained_on = {job["workers"]["training"].split(":")[0] for job in jobs}
    assert all(job["status"] == "deployed" for job in jobs)
    assert len(trained_on) == 2, trained_on


def test_redis_restart_loses_no_job_and_no_version(private_stack, client):
    done_id = start(client, "before-restart")
    wait_for_job(client, done_id, timeout_s=120)
    model_before = client.get("/v1/models/before-restart").json()
    job_before = client.get(f"/v1/jobs/{done_id}").json()
    running_id = start(client, "during-restart")
    waiting_id = start(client, "waiting-during-restart")
    wait_for(status_is(client, running_id, "training"), 60, "training")

    private_stack.restart_redis()

    assert client.get("/v1/models/before-restart").json() == model_before
    assert client.get(f"/v1/jobs/{done_id}").json() == job_before
    running = wait_for_job(client, running_id, timeout_s=180)
    waiting = wait_for_job(client, waiting_id, timeout_s=180)
    assert running["status"] == "deployed", running
    assert waiting["status"] == "deployed", waiting
    assert len(client.get("/v1/models/during-restart").json()["versions"]) == 1


def test_s3_outage_is_reported_and_serving_keeps_answering(private_stack, client):
    job_id = start(client, "outage")
    wait_for_job(client, job_id, timeout_s=120)
    instance = {"instances": [{"standLRT": 0.5, "sex": "F"}]}
    before = client.post("/v1/models/outage/predict", json=instance).json()

    private_stack.stop_seaweed()
    ready = client.get("/readyz")
    during = client.post("/v1/models/outage/predict", json=instance)
    refused = client.post(
        "/v1/jobs", json={"model": "outage", "dataset_id": "x", **REQUEST}
    )

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "ok"
    assert "S3_ENDPOINT_URL" in ready.json()["checks"]["s3"]
    assert during.status_code == 200, during.text
    assert during.json()["predictions"] == before["predictions"]
    assert refused.status_code == 503
    assert "S3" in refused.json()["error"]["message"]

    private_stack.start_seaweed()
    assert client.get("/readyz").status_code == 200


def test_training_during_an_s3_outage_fails_with_the_reason(private_stack, client):
    job_id = start(client, "outage-training")
    wait_for(status_is(client, job_id, "training"), 60, "training")

    private_stack.stop_seaweed()
    wait_for(
        lambda: "gave up after" in _log(private_stack, "training"),
        90,
        "the training worker giving up",
    )
    private_stack.start_seaweed()
    job = wait_for_job(client, job_id, timeout_s=120)

    assert job["status"] in {"failed", "deployed"}, job
    assert "S3" in _log(private_stack, "training")


def _predict_ok(client: httpx.Client, model: str, body: dict) -> dict | None:
    answer = client.post(f"/v1/models/{model}/predict", json=body)
    return answer.json() if answer.status_code == 200 else None


def _log(private_stack: PrivateStack, queue: str) -> str:
    return (private_stack.logs / f"worker-{queue}.log").read_text(errors="replace")
