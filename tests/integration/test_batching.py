"""Micro-batched predictions: each caller gets its own answer, errors stay alone."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from services.serving.tasks import run_pipeline
from shared.pipelines import build_pipeline
from tests.integration.flow import train, upload_ok
from tests.unit.test_artifacts_and_serving import record_for

CONCURRENT = 24


def students_csv(rows: int = 300) -> bytes:
    generator = np.random.default_rng(3)
    hours = generator.uniform(0, 10, rows)
    group = generator.choice(["a", "b", "c"], rows)
    passed = (hours + (group == "a") * 2 + generator.normal(0, 1, rows) > 6).astype(int)
    frame = pd.DataFrame(
        {
            "student": range(rows),
            "hours": hours.round(3),
            "group": group,
            "passed": passed,
        }
    )
    return frame.to_csv(index=False).encode()


def instances(count: int) -> list[dict[str, Any]]:
    return [
        {
            "student": f"s{index}",
            "hours": round(0.37 * index, 3),
            "group": "abc"[index % 3],
        }
        for index in range(count)
    ]


@pytest.fixture
def trained(api: httpx.Client, model_name: str) -> str:
    dataset = upload_ok(api, students_csv(), id_column="student")
    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="passed",
        features=["hours", "group"],
        algorithm="linear",
    )
    assert job["status"] == "deployed", job
    return model_name


def predict(api: httpx.Client, model: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/v1/models/{model}/predict", json=body)


def test_concurrent_requests_each_get_their_own_predictions(
    api: httpx.Client, trained: str
) -> None:
    bodies = [{"instances": instances(1 + index % 3)} for index in range(CONCURRENT)]
    for index, body in enumerate(bodies):  # different students in every request
        for instance in body["instances"]:
            instance["hours"] = round(instance["hours"] + 0.41 * index, 3)
    alone = [predict(api, trained, body).json() for body in bodies]

    with ThreadPoolExecutor(CONCURRENT) as pool:
        together = list(pool.map(lambda body: predict(api, trained, body), bodies))

    assert [answer.status_code for answer in together] == [200] * CONCURRENT
    for expected, answer in zip(alone, together, strict=True):
        got = answer.json()
        assert got["ids"] == expected["ids"]
        assert got["predictions"] == expected["predictions"]
        for ours, theirs in zip(
            got["probabilities"], expected["probabilities"], strict=True
        ):
            assert ours == pytest.approx(theirs, abs=1e-9)


def test_a_bad_request_among_good_ones_fails_alone(
    api: httpx.Client, trained: str
) -> None:
    good = {"instances": instances(2)}
    bad = {"instances": [{"hours": "many", "group": "a"}]}
    bodies = [bad if index == CONCURRENT // 2 else good for index in range(CONCURRENT)]

    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda body: predict(api, trained, body), bodies))

    statuses = [answer.status_code for answer in answers]
    assert statuses[CONCURRENT // 2] == 422
    assert "hours" in answers[CONCURRENT // 2].json()["error"]["message"]
    assert statuses.count(200) == CONCURRENT - 1


@pytest.mark.parametrize("algorithm", ["linear", "hist_gradient_boosting"])
def test_the_serving_path_equals_scikit_learn(algorithm: str) -> None:
    """One preprocessing pass and a frame built by column give sklearn's numbers."""
    frame = pd.read_csv(io.BytesIO(students_csv()))
    pipeline = build_pipeline(
        "classification", algorithm, ["hours"], ["group"], seed=42
    )
    pipeline.fit(frame[["hours", "group"]], frame["passed"])
    record = record_for(pipeline)
    rows = [[0.5, "a"], [None, "b"], [7.25, None], [3.0, "unseen"]]

    answer = run_pipeline(record, pipeline, ["hours", "group"], rows)

    expected_frame = pd.DataFrame(
        {
            "hours": [0.5, np.nan, 7.25, 3.0],
            "group": pd.Series(["a", "b", np.nan, "unseen"], dtype=object),
        }
    )
    assert answer["predictions"] == pipeline.predict(expected_frame).tolist()
    np.testing.assert_allclose(
        answer["probabilities"], pipeline.predict_proba(expected_frame), atol=1e-6
    )


def test_the_fast_path_and_the_fastapi_route_answer_alike(
    api: httpx.Client, trained: str
) -> None:
    body = b'{"instances": [{"student": "s1", "hours": 4.2, "group": "b"}]}'
    url = f"/v1/models/{trained}/predict"

    fast = api.post(url, content=body, headers={"content-type": "application/json"})
    # A +json type is left to the FastAPI route, which accepts it too.
    routed = api.post(
        url, content=body, headers={"content-type": "application/vnd.eduml+json"}
    )
    bad_fast = api.post(
        url, content=b'{"instances": [', headers={"content-type": "application/json"}
    )
    unknown_key = api.post(
        url,
        content=body,
        headers={
            "authorization": "Bearer eduml_not-a-key",
            "content-type": "application/json",
        },
    )

    assert fast.status_code == routed.status_code == 200
    assert fast.json() == routed.json()
    assert bad_fast.status_code == 422
    assert bad_fast.json()["error"]["code"] == "invalid_input"
    assert unknown_key.status_code == 401
    assert unknown_key.headers["www-authenticate"] == "Bearer"
