"""Batch scoring: a stored dataset scored by a version into a CSV, as /predict would."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from shared.pseudonyms import pseudonym, tenant_key
from shared.settings import Settings
from tests.conftest import TenantAccess, client_with_key, create_tenant
from tests.integration.flow import train, upload_ok

SCORED_ROWS = 20_000
AT_RISK = 'fail, "at risk"'  # a class label a CSV field must quote
PREDICT_ROWS = 1_000  # instances per /predict request, the gateway's limit
BATCH_TIMEOUT_S = 120.0


def students(rows: int, seed: int, labelled: bool) -> pd.DataFrame:
    """Students with a number, a category and gaps in both; ids like 'S000001'."""
    generator = np.random.default_rng(seed)
    hours = generator.uniform(0, 10, rows).round(3)
    group = generator.choice(["a", "b", "c"], rows).astype(object)
    frame = pd.DataFrame(
        {"student": [f"S{seed}{i:06d}" for i in range(rows)], "hours": hours}
    )
    frame["group"] = group
    frame.loc[generator.random(rows) < 0.05, "hours"] = np.nan
    frame.loc[generator.random(rows) < 0.05, "group"] = None
    if labelled:
        risk = 6 - hours + (group == "a") * 2 + generator.normal(0, 1, rows)
        frame["outcome"] = np.where(risk > 2, AT_RISK, "pass")
    else:
        frame.loc[generator.random(rows) < 0.02, "group"] = "d"  # unseen in training
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@dataclass
class Scored:
    """A tenant with a trained model, a dataset of new students, and its batch job."""

    tenant: TenantAccess
    model: str
    version: int
    students: pd.DataFrame
    dataset: dict[str, Any]
    job: dict[str, Any]
    posted: dict[str, Any]


@pytest.fixture(scope="module")
def scored(gateway_url: str, settings: Settings) -> Any:
    with client_with_key(gateway_url, settings.admin_api_key) as admin:
        tenant = create_tenant(gateway_url, admin, "test batch scoring")
    api = tenant.client
    training = upload_ok(api, csv_bytes(students(600, 1, True)), id_column="student")
    trained = train(
        api,
        model="at-risk",
        dataset_id=training["id"],
        target="outcome",
        features=["hours", "group"],
        algorithm="linear",
    )
    assert trained["status"] == "deployed", trained
    new = students(SCORED_ROWS, 2, False)
    dataset = upload_ok(api, csv_bytes(new), id_column="student")

    posted = api.post("/v1/models/at-risk/batch", json={"dataset_id": dataset["id"]})
    assert posted.status_code == 202, posted.text
    job = wait_for_batch(api, posted.json()["id"])
    yield Scored(
        tenant, "at-risk", trained["version"], new, dataset, job, posted.json()
    )
    api.close()


def wait_for_batch(api: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        record = dict(api.get(f"/v1/jobs/{job_id}").json())
        if record["status"] in ("done", "failed"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"batch job {job_id} not finished after {BATCH_TIMEOUT_S} s")


def download(api: httpx.Client, job_id: str) -> tuple[httpx.Response, pd.DataFrame]:
    answer = api.get(f"/v1/jobs/{job_id}/predictions")
    assert answer.status_code == 200, answer.text
    table = pd.read_csv(io.BytesIO(answer.content), keep_default_na=False)
    return answer, table


def instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as an LMS sends them to /predict: null for a gap."""
    return [
        {
            "hours": None if pd.isna(hours) else float(hours),
            "group": None if pd.isna(group) else str(group),
        }
        for hours, group in zip(frame["hours"], frame["group"], strict=True)
    ]


def predicted_one_by_one(api: httpx.Client, model: str, frame: pd.DataFrame) -> dict:
    predictions: list[Any] = []
    probabilities: list[dict[str, float]] = []
    for start in range(0, len(frame), PREDICT_ROWS):
        part = instances(frame.iloc[start : start + PREDICT_ROWS])
        answer = api.post(f"/v1/models/{model}/predict", json={"instances": part})
        assert answer.status_code == 200, answer.text
        predictions += answer.json()["predictions"]
        probabilities += answer.json()["probabilities"]
    return {"predictions": predictions, "probabilities": probabilities}


# --- a batch job end to end ---------------------------------------------------


def test_the_csv_holds_what_predict_answers_for_every_row(scored: Scored):
    api = scored.tenant.client

    answer, table = download(api, scored.job["id"])
    expected = predicted_one_by_one(api, scored.model, scored.students)

    assert answer.headers["content-type"].startswith("text/csv")
    assert list(table.columns) == [
        "row",
        "id",
        "prediction",
        f"probability_{AT_RISK}",
        "probability_pass",
    ]
    assert table["prediction"].tolist() == expected["predictions"]
    for label in (AT_RISK, "pass"):
        column = table[f"probability_{label}"].astype(float).tolist()
        assert column == [row[label] for row in expected["probabilities"]]


def test_the_csv_carries_row_numbers_and_stored_pseudonyms_never_raw_ids(
    scored: Scored, settings: Settings
):
    api = scored.tenant.client
    key = tenant_key(settings.pseudonym_key, scored.tenant.id)

    answer, table = download(api, scored.job["id"])

    assert table["row"].tolist() == list(range(1, SCORED_ROWS + 1))
    assert table["id"].tolist() == [
        pseudonym(key, s) for s in scored.students["student"]
    ]
    assert scored.students["student"].iloc[0] not in answer.text
    assert scored.students["student"].iloc[-1] not in answer.text


def test_the_job_record_shows_kind_states_version_and_full_progress(scored: Scored):
    job = scored.job

    assert scored.posted["status"] == "queued"
    assert scored.posted["rows"] == SCORED_ROWS
    assert job["kind"] == "batch"
    assert job["status"] == "done", job
    assert job["model"] == scored.model
    assert job["version"] == scored.version
    assert job["dataset_id"] == scored.dataset["id"]
    assert job["progress"] == {"rows_done": SCORED_ROWS, "rows_total": SCORED_ROWS}
    times = job["timestamps"]
    assert sorted(times, key=times.get) == ["queued", "scoring", "done"]
    assert job["costs"]["scoring"]["wall_s"] > 0
    assert job["attempts"] == 1


def test_download_before_the_job_is_done_is_refused_with_its_progress(
    scored: Scored,
):
    api = scored.tenant.client
    posted = api.post(
        f"/v1/models/{scored.model}/batch",
        json={"dataset_id": scored.dataset["id"], "version": scored.version},
    )

    early = api.get(f"/v1/jobs/{posted.json()['id']}/predictions")
    finished = wait_for_batch(api, posted.json()["id"])

    assert posted.status_code == 202, posted.text
    assert early.status_code == 404
    message = early.json()["error"]["message"]
    assert "are not ready" in message and f"of {SCORED_ROWS} rows scored" in message
    assert "once its status is 'done'" in message
    assert finished["status"] == "done"


def test_a_training_job_has_no_predictions_to_download(scored: Scored):
    api = scored.tenant.client
    jobs = api.get("/v1/jobs").json()["jobs"]
    training_job = next(job for job in jobs if job["kind"] == "training")

    answer = api.get(f"/v1/jobs/{training_job['id']}/predictions")

    assert answer.status_code == 404
    assert "is a training job" in answer.json()["error"]["message"]


def test_the_batch_queue_is_consumed_by_the_serving_worker(scored: Scored):
    queues = scored.tenant.client.get("/v1/queues").json()["queues"]

    batch = next(queue for queue in queues if queue["name"] == "batch")

    assert [name.split("@")[0] for name in batch["consumers"]] == ["test-serving"]
    assert batch["status"] == "ok"


def test_the_dashboard_shows_the_batch_job_and_its_states(scored: Scored):
    api = scored.tenant.client
    job_id = scored.job["id"]

    overview = api.get("/ui")
    page = api.get(f"/ui/jobs/{job_id}")

    assert overview.status_code == 200, overview.text
    assert job_id in overview.text
    assert page.status_code == 200, page.text
    assert 'data-state="scoring"' in page.text and 'data-state="done"' in page.text


# --- requests that cannot be scored -------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        (
            "/v1/models/at-risk/batch",
            {"dataset_id": "0" * 32},
            404,
            ["dataset '00000000000000000000000000000000' not found"],
        ),
        (
            "/v1/models/no-such-model/batch",
            {"dataset_id": "{dataset}"},
            404,
            ["model 'no-such-model' not found"],
        ),
        (
            "/v1/models/at-risk/batch",
            {"dataset_id": "{dataset}", "version": 9},
            404,
            ["has no version 9", "its versions are [1]"],
        ),
        (
            "/v1/models/at-risk/batch",
            {"dataset_id": "{dataset}", "rows": 10},
            422,
            ["body.rows"],
        ),
    ],
    ids=["unknown-dataset", "unknown-model", "unknown-version", "unknown-field"],
)
def test_a_request_naming_what_does_not_exist_is_refused(
    scored: Scored, path: str, body: dict, status: int, words: list[str]
):
    body = {
        k: v.format(dataset=scored.dataset["id"]) if isinstance(v, str) else v
        for k, v in body.items()
    }

    answer = scored.tenant.client.post(path, json=body)

    assert answer.status_code == status, answer.text
    for word in words:
        assert word in answer.json()["error"]["message"]


def test_a_dataset_without_the_feature_columns_is_refused_naming_them(
    scored: Scored,
):
    api = scored.tenant.client
    frame = scored.students.head(50).drop(columns=["group"])
    dataset = upload_ok(api, csv_bytes(frame), id_column="student")

    answer = api.post(
        f"/v1/models/{scored.model}/batch", json={"dataset_id": dataset["id"]}
    )

    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "lacks the feature columns ['group']" in message
    assert "at-risk v1 needs" in message


def test_text_where_the_model_needs_numbers_is_refused(scored: Scored):
    api = scored.tenant.client
    frame = scored.students.head(50).assign(hours="many")
    dataset = upload_ok(api, csv_bytes(frame), id_column="student")

    answer = api.post(
        f"/v1/models/{scored.model}/batch", json={"dataset_id": dataset["id"]}
    )

    assert answer.status_code == 422
    assert "columns ['hours']" in answer.json()["error"]["message"]
    assert "hold text" in answer.json()["error"]["message"]


def test_a_model_without_champion_is_refused_unless_a_version_is_named(
    scored: Scored, model_name: str
):
    api = scored.tenant.client
    rows = "\n".join(f"S{i:02d},{i},{i % 3},7" for i in range(20))
    dataset = upload_ok(api, f"student_id,hours,absences,score\n{rows}".encode())
    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="score",
        task="regression",
        algorithm="linear",
    )

    refused = api.post(
        f"/v1/models/{model_name}/batch", json={"dataset_id": dataset["id"]}
    )
    named = api.post(
        f"/v1/models/{model_name}/batch",
        json={"dataset_id": dataset["id"], "version": 1},
    )
    record = wait_for_batch(api, named.json()["id"])
    _, table = download(api, named.json()["id"])

    assert job["status"] == "rejected", job
    assert refused.status_code == 409
    assert "has no champion yet" in refused.json()["error"]["message"]
    assert named.status_code == 202, named.text
    assert record["status"] == "done", record
    assert list(table.columns) == ["row", "id", "prediction"]
    assert len(table) == 20
