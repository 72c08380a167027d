"""A batch job whose serving worker is killed is scored again, from its first row.

The private stack's steps wait a few seconds before they start (conftest),
so the worker can be killed while the job is ``scoring``.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.faults.conftest import wait_for
from tests.faults.test_faults import start, status_is
from tests.integration.flow import upload_ok, wait_for_job

pytestmark = pytest.mark.faults


def test_killed_serving_worker_batch_job_is_scored_again_once(private_stack, client):
    model_job = start(client, "batch-faults")
    assert wait_for_job(client, model_job, timeout_s=120)["status"] == "deployed"
    dataset = upload_ok(client, (DATA / "exam.csv").read_bytes())
    posted = client.post(
        "/v1/models/batch-faults/batch", json={"dataset_id": dataset["id"]}
    )
    job_id = posted.json()["id"]
    wait_for(status_is(client, job_id, "scoring"), 60, "scoring")

    private_stack.kill_worker("serving")
    private_stack.start_worker("serving")
    job = wait_for_job(client, job_id, timeout_s=120)
    answer = client.get(f"/v1/jobs/{job_id}/predictions")

    assert job["status"] == "done", job
    assert job["attempts"] == 2
    assert any("lost during scoring" in note for note in job["notes"]), job["notes"]
    assert job["progress"] == {"rows_done": 4059, "rows_total": 4059}
    table = pd.read_csv(io.BytesIO(answer.content))
    assert table["row"].tolist() == list(range(1, 4060))
