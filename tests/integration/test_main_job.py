"""The main job end to end: upload, train, evaluate, promote, predict.

These run against the real gateway, real Celery workers, Redis and SeaweedFS.
"""

from __future__ import annotations

import pandas as pd
import pytest
import redis

from tests.conftest import DATA
from tests.integration.flow import start_job, train, upload_ok, wait_for_job

pytestmark = pytest.mark.integration

CHEM97_FEATURES = ["gender", "age", "gcsescore"]


@pytest.fixture(scope="module")
def chem97_at_risk() -> bytes:
    """chem97 with the label an LMS would send: an A-level score of 4 or less."""
    frame = pd.read_csv(DATA / "chem97.csv")
    frame["at_risk"] = (frame["score"] <= 4).astype(int)
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def exam_bytes() -> bytes:
    return (DATA / "exam.csv").read_bytes()


def test_upload_describes_the_table_and_same_bytes_give_same_id(api, exam_bytes):
    first = upload_ok(api, exam_bytes)
    second = upload_ok(api, exam_bytes)

    assert first["id"] == second["id"]
    assert first["rows"] == 4059
    columns = {column["name"]: column for column in first["columns"]}
    assert columns["normexam"]["type"] == "numeric"
    assert columns["schgend"]["type"] == "categorical"
    assert all(column["missing"] == 0 for column in first["columns"])


def test_at_risk_model_is_trained_promoted_and_served(api, chem97_at_risk, model_name):
    dataset = upload_ok(api, chem97_at_risk)

    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="at_risk",
        features=CHEM97_FEATURES,
    )

    assert job["status"] == "deployed", job
    assert job["version"] == 1
    assert job["task"] == "classification"
    assert job["attempts"] == 1
    assert job["metrics"]["roc_auc"] >= 0.80
    assert job["decision"]["promoted"] is True
    assert set(job["timestamps"]) == {"queued", "training", "evaluating", "deployed"}
    model = api.get(f"/v1/models/{model_name}").json()
    assert model["champion"] == 1
    assert model["versions"][0]["dataset_id"] == dataset["id"]
    assert model["versions"][0]["seed"] == 42
    answer = api.post(
        f"/v1/models/{model_name}/predict",
        json={
            "instances": [
                {"gender": "F", "age": 3, "gcsescore": 7.6},
                {"gender": "M", "age": -3, "gcsescore": 4.1},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 1
    assert body["predictions"] == [0, 1]
    assert body["probabilities"][1]["1"] > 0.5


def test_second_job_gives_version_two_promoted_only_when_better(
    api, exam_bytes, model_name
):
    dataset = upload_ok(api, exam_bytes)
    request = dict(
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT", "sex", "schavg", "vr", "intake"],
    )

    first = train(api, **request, algorithm="linear")
    second = train(api, **request, algorithm="random_forest")

    assert (first["version"], second["version"]) == (1, 2)
    decision = second["decision"]
    assert decision["champion_version"] == 1
    champion_r2 = decision["champion_metrics"]["r2"]
    assert decision["promoted"] == (second["metrics"]["r2"] > champion_r2)
    model = api.get(f"/v1/models/{model_name}").json()
    assert model["champion"] == (2 if decision["promoted"] else 1)
    assert [v["version"] for v in model["versions"]] == [1, 2]


def test_regression_reaches_known_chem97_quality(api, model_name):
    dataset = upload_ok(api, (DATA / "chem97.csv").read_bytes())

    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="score",
        task="regression",
        features=CHEM97_FEATURES,
        algorithm="linear",
    )

    assert job["status"] == "deployed", job
    assert job["metrics"]["r2"] >= 0.40
    assert dataset["id_column"] == "student"


def test_c10_column_order_missing_and_extra_columns(api, exam_bytes, model_name):
    dataset = upload_ok(api, exam_bytes)
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT", "sex", "vr"],
        algorithm="linear",
    )
    ordered = {"standLRT": 0.6, "sex": "F", "vr": "mid 50%"}
    reordered = {"vr": "mid 50%", "standLRT": 0.6, "sex": "F"}
    url = f"/v1/models/{model_name}/predict"

    first = api.post(url, json={"instances": [ordered]}).json()
    second = api.post(url, json={"instances": [reordered]}).json()
    extra = api.post(url, json={"instances": [{**ordered, "email": "a@b.c"}]})
    missing = api.post(url, json={"instances": [{"sex": "F", "vr": "mid 50%"}]})

    assert first["predictions"] == second["predictions"]
    assert extra.status_code == 200
    assert extra.json()["predictions"] == first["predictions"]
    assert missing.status_code == 422
    assert "standLRT" in missing.json()["error"]["message"]


def test_prediction_refuses_non_finite_numbers(api, exam_bytes, model_name):
    dataset = upload_ok(api, exam_bytes)
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT", "sex"],
        algorithm="linear",
    )
    body = '{"instances": [{"standLRT": NaN, "sex": "F"}]}'

    answer = api.post(
        f"/v1/models/{model_name}/predict",
        content=body,
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 422
    assert "standLRT" in answer.json()["error"]["message"]
    assert "finite" in answer.json()["error"]["message"]


def test_prediction_gives_back_the_callers_ids(api, model_name):
    csv = "student_id,hours,passed\n" + "\n".join(
        f"S{i:02d},{i % 7},{int(i % 7 > 2)}" for i in range(40)
    )
    dataset = upload_ok(api, csv.encode(), id_column="student_id")
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="passed",
        algorithm="linear",
    )

    answer = api.post(
        f"/v1/models/{model_name}/predict",
        json={
            "instances": [
                {"student_id": "S07", "hours": 6},
                {"student_id": "S99", "hours": 0},
            ]
        },
    ).json()

    assert answer["ids"] == ["S07", "S99"]
    assert len(answer["predictions"]) == 2


def test_durable_state_survives_losing_redis(api, exam_bytes, model_name, connection):
    dataset = upload_ok(api, exam_bytes)
    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT"],
        algorithm="linear",
    )
    model_before = api.get(f"/v1/models/{model_name}").json()
    job_before = api.get(f"/v1/jobs/{job['id']}").json()

    _forget_everything_but_queues(connection)

    assert api.get(f"/v1/models/{model_name}").json() == model_before
    assert api.get(f"/v1/jobs/{job['id']}").json() == job_before


def _forget_everything_but_queues(connection: redis.Redis) -> None:
    """What a Redis restart loses, short of the queues the workers listen on."""
    kept = (
        b"_kombu",
        b"eduml:worker:",
        b"training",
        b"evaluation",
        b"serving",
        b"unacked",
    )
    for key in connection.scan_iter():
        if not key.startswith(kept):
            connection.delete(key)


def test_jobs_are_listed_newest_first(api, exam_bytes, model_name):
    dataset = upload_ok(api, exam_bytes)
    first = start_job(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT"],
        algorithm="linear",
    )
    second = start_job(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="normexam",
        features=["standLRT"],
        algorithm="linear",
    )
    wait_for_job(api, second["id"])

    listed = [
        job["id"] for job in api.get("/v1/jobs", params={"limit": 50}).json()["jobs"]
    ]

    assert listed.index(second["id"]) < listed.index(first["id"])


def test_queues_show_depth_and_consumers(api):
    answer = api.get("/v1/queues").json()

    names = {queue["name"]: queue for queue in answer["queues"]}
    assert set(names) == {"training", "evaluation", "serving", "batch"}
    assert all(queue["consumers"] for queue in names.values())
    assert all(isinstance(queue["depth"], int) for queue in names.values())


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "s3": "ok"}


def test_openapi_is_served(api):
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/datasets", "/v1/jobs", "/v1/models/{model}/predict"} <= set(paths)
