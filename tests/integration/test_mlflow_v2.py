"""MLflow's scoring format and the Open Inference Protocol (V2) on a model trained
through ``/v1``, against the real gateway, workers, Redis and SeaweedFS.

Every format must give exactly the predictions ``/v1/models/{model}/predict``
gives for the same students.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import client_with_key
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration

FEATURES = ["attendance", "quiz", "track"]
STUDENTS = [
    {"attendance": 0.95, "quiz": 78.0, "track": "A"},
    {"attendance": 0.40, "quiz": 35.0, "track": "B"},
    {"attendance": 0.70, "quiz": 52.0, "track": "B"},
    {"attendance": 0.55, "quiz": None, "track": "A"},
]


def students_csv(rows: int = 240) -> bytes:
    generator = np.random.default_rng(7)
    attendance = generator.uniform(0.3, 1.0, rows).round(2)
    quiz = generator.uniform(20, 95, rows).round(1)
    track = generator.choice(["A", "B"], rows)
    risk = 3.0 - 3.5 * attendance - 0.03 * quiz + 0.5 * (track == "B")
    at_risk = (risk + generator.normal(0, 0.4, rows) > -0.6).astype(int)
    frame = pd.DataFrame(
        {"attendance": attendance, "quiz": quiz, "track": track, "at_risk": at_risk}
    )
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def trained(gateway_url, settings) -> dict[str, Any]:
    """A tenant with one champion, and the /v1 predictions for STUDENTS."""
    with client_with_key(gateway_url, settings.admin_api_key) as admin:
        answer = admin.post("/v1/tenants", json={"name": "MLflow and V2 clients"})
    api_key = answer.json()["api_key"]
    api = client_with_key(gateway_url, api_key)
    dataset = upload_ok(api, students_csv())
    job = train(
        api,
        model="risk",
        dataset_id=dataset["id"],
        target="at_risk",
        features=FEATURES,
        algorithm="linear",
    )
    assert job["status"] == "deployed", job
    expected = api.post("/v1/models/risk/predict", json={"instances": STUDENTS}).json()
    assert len(set(expected["predictions"])) == 2, expected
    return {"api": api, "key": api_key, "expected": expected, "url": gateway_url}


def invoke(
    trained: dict[str, Any],
    body: Any = None,
    content: bytes | None = None,
    content_type: str = "application/json",
    model: str = "risk",
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {trained['key']}",
        "Content-Type": content_type,
    }
    if content is None:
        content = json.dumps(body).encode() if body is not None else b""
    return httpx.post(
        f"{trained['url']}/v1/models/{model}/invocations",
        content=content,
        headers=headers,
        timeout=60,
    )


def predictions(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"predictions"}
    return list(answer.json()["predictions"])


# --- MLflow --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {
            "dataframe_split": {
                "columns": FEATURES,
                "data": [[s[name] for name in FEATURES] for s in STUDENTS],
            }
        },
        {"dataframe_records": STUDENTS},
        {"instances": STUDENTS},
        {"instances": [[s[name] for name in FEATURES] for s in STUDENTS]},
        {"inputs": {name: [s[name] for s in STUDENTS] for name in FEATURES}},
        {"inputs": STUDENTS, "params": {"ignored": True}},
    ],
    ids=[
        "dataframe_split",
        "dataframe_records",
        "instances_records",
        "instances_rows",
        "inputs_columns",
        "inputs_with_params",
    ],
)
def test_each_mlflow_json_format_predicts_like_v1(trained, body):
    assert predictions(invoke(trained, body)) == trained["expected"]["predictions"]


def test_mlflow_csv_predicts_like_v1(trained):
    body = pd.DataFrame(STUDENTS).to_csv(index=False).encode()

    answer = invoke(trained, content=body, content_type="text/csv; charset=utf-8")

    assert predictions(answer) == trained["expected"]["predictions"]


@pytest.mark.parametrize(
    "content, code",
    [
        (b"{not json", "BAD_REQUEST"),
        (b'{"rows": []}', "BAD_REQUEST"),
        (b'{"instances": [], "inputs": []}', "BAD_REQUEST"),
        (b"[1, 2]", "BAD_REQUEST"),
        (
            b'{"dataframe_split": {"columns": ["attendance"], "data": [[0.5, 1]]}}',
            "BAD_REQUEST",
        ),
        (
            b'{"dataframe_split": {"index": [0, 1], "data": [[0.5, 50, "A"]]}}',
            "BAD_REQUEST",
        ),
        (
            b'{"dataframe_records": [{"attendance": 0.5, "quiz": 50}]}',
            "INVALID_PARAMETER_VALUE",
        ),
        (b'{"instances": [[0.5, 50]]}', "INVALID_PARAMETER_VALUE"),
        (
            b'{"dataframe_records": [{"attendance": "often", "quiz": 50, "track": "A"}]}',
            "INVALID_PARAMETER_VALUE",
        ),
    ],
    ids=[
        "invalid_json",
        "no_format_field",
        "two_format_fields",
        "a_list",
        "row_of_wrong_width",
        "index_of_wrong_length",
        "missing_column",
        "short_row",
        "text_for_a_number",
    ],
)
def test_bad_mlflow_bodies_get_mlflows_400_errors(trained, content, code):
    answer = invoke(trained, content=content)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == code
    assert answer.json()["message"]


def test_bad_mlflow_csv_is_a_bad_request(trained):
    answer = invoke(trained, content=b"", content_type="text/csv")

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "content, words",
    [
        (b"attendance,quiz,track\n0.5,inf,A\n", "column 'quiz' holds the non-finite"),
        (b"attendance,quiz,track\n0.5,1e400,A\n", "column 'quiz' holds the non-finite"),
        (b"attendance,quiz,track\n0.5,50,A,9,9\n", "line 2 has a value in field 4"),
        (
            b"attendance,quiz,track\n0.5,50,A\n0.5,50\n",
            "line 3 has 2 fields but the header names 3 columns",
        ),
        (b"", "file is empty"),
        (b"attendance,quiz\n\xff,1\n", "not valid utf-8 at line 2, byte 1"),
    ],
    ids=["infinity", "overflow", "row_longer", "row_shorter", "empty", "not_utf8"],
)
def test_mlflow_csv_that_cannot_be_read_is_refused_naming_the_line(
    trained, content, words
):
    answer = invoke(trained, content=content, content_type="text/csv")

    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "BAD_REQUEST"
    assert words in answer.json()["message"]


DEEP = b"[" * 5000 + b"]" * 5000


def test_deeply_nested_json_is_a_400_in_each_protocols_shape(trained):
    mlflow = invoke(trained, content=b'{"instances": ' + DEEP + b"}")
    v2 = trained["api"].post(
        "/v2/models/risk/infer",
        content=b'{"inputs": ' + DEEP + b"}",
        headers={"content-type": "application/json"},
    )
    v1 = trained["api"].post(
        "/v1/models/risk/predict",
        content=b'{"instances": ' + DEEP + b"}",
        headers={"content-type": "application/json"},
    )

    assert mlflow.status_code == 400, mlflow.text
    assert "nests" in mlflow.json()["message"]
    assert v2.status_code == 400, v2.text
    assert "nests" in v2.json()["error"]
    assert v1.status_code == 400, v1.text
    assert "nests too deeply" in v1.json()["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json; charset=latin-1",
        "application/json; format=pandas-split",
    ],
)
def test_other_content_types_are_415_in_plain_text(trained, content_type):
    answer = invoke(trained, {"instances": STUDENTS}, content_type=content_type)

    assert answer.status_code == 415
    assert answer.headers["content-type"].startswith("text/plain")


def test_mlflow_errors_for_unknown_models_and_keys(trained):
    unknown = invoke(trained, {"instances": STUDENTS}, model="no-such-model")
    no_key = httpx.post(
        f"{trained['url']}/v1/models/risk/invocations",
        json={"instances": STUDENTS},
        timeout=30,
    )

    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert no_key.status_code == 401
    assert no_key.json()["error_code"] == "UNAUTHENTICATED"


# --- Open Inference Protocol (V2) ------------------------------------------------------


def pandas_request(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    inputs = [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": "BYTES" if name == "track" else "FP64",
            "data": [row[name] for row in rows],
        }
        for name in FEATURES
    ]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, **extra}


def test_v2_health_and_server_metadata_need_no_key(gateway_url):
    live = httpx.get(f"{gateway_url}/v2/health/live")
    ready = httpx.get(f"{gateway_url}/v2/health/ready")
    server = httpx.get(f"{gateway_url}/v2")

    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert server.json()["name"] == "eduml"
    assert server.json()["extensions"] == []


def test_v2_model_metadata_names_one_input_per_feature(trained):
    api = trained["api"]

    model = api.get("/v2/models/risk").json()
    version = api.get("/v2/models/risk/versions/1").json()

    assert model["name"] == "risk"
    assert model["versions"] == ["1"]
    assert model["platform"] == "sklearn"
    assert [(t["name"], t["datatype"]) for t in model["inputs"]] == [
        ("attendance", "FP64"),
        ("quiz", "FP64"),
        ("track", "BYTES"),
    ]
    assert [t["name"] for t in model["outputs"]] == ["predict", "predict_proba"]
    assert version["versions"] == ["1"]


def test_v2_readiness_of_a_model_and_of_its_version(trained):
    api = trained["api"]

    assert api.get("/v2/models/risk/ready").json() == {"name": "risk", "ready": True}
    assert api.get("/v2/models/risk/versions/1/ready").status_code == 200
    assert api.get("/v2/models/risk/versions/9/ready").status_code == 404


def test_v2_infer_with_one_tensor_per_column_predicts_like_v1(trained):
    body = pandas_request(
        STUDENTS,
        id="request-1",
        outputs=[{"name": "predict"}, {"name": "predict_proba"}],
    )

    answer = trained["api"].post("/v2/models/risk/infer", json=body)

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["model_name"], result["model_version"], result["id"]) == (
        "risk",
        "1",
        "request-1",
    )
    predict, proba = result["outputs"]
    assert predict["name"] == "predict"
    assert predict["data"] == trained["expected"]["predictions"]
    assert predict["shape"] == [len(STUDENTS)]
    assert predict["datatype"] == "INT64"
    expected = [p for row in trained["expected"]["probabilities"] for p in row.values()]
    assert proba["shape"] == [len(STUDENTS), 2]
    assert proba["data"] == pytest.approx(expected)


def test_v2_infer_on_a_version_with_one_2d_tensor_predicts_like_v1(trained):
    rows = [[s[name] for name in FEATURES] for s in STUDENTS]
    body = {
        "inputs": [
            {
                "name": "students",
                "shape": [len(rows), 3],
                "datatype": "BYTES",
                "data": rows,
            }
        ]
    }

    answer = trained["api"].post("/v2/models/risk/versions/1/infer", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == trained["expected"]["predictions"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": []},
        pandas_request(STUDENTS, outputs=[{"name": "explain"}]),
        {
            "parameters": {"content_type": "pd"},
            "inputs": pandas_request(STUDENTS)["inputs"][:2],
        },
        {
            "inputs": [
                {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}
            ]
        },
        {
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": name, "shape": [2], "datatype": "FP64", "data": [1]}
                for name in FEATURES
            ],
        },
    ],
    ids=[
        "no_inputs",
        "unknown_output",
        "missing_column",
        "wrong_width",
        "shape_mismatch",
    ],
)
def test_v2_bad_inference_requests_get_an_error_string(trained, body):
    answer = trained["api"].post("/v2/models/risk/infer", json=body)

    assert answer.status_code == 400, answer.text
    assert isinstance(answer.json()["error"], str)


def test_v2_refuses_a_tensor_named_twice_and_a_body_that_is_no_object(trained):
    doubled = pandas_request(STUDENTS)
    doubled["inputs"].append({**doubled["inputs"][0], "data": [9.0] * len(STUDENTS)})

    twice = trained["api"].post("/v2/models/risk/infer", json=doubled)
    listed = trained["api"].post("/v2/models/risk/infer", json=[1, 2])

    assert twice.status_code == 400, twice.text
    assert f"[{FEATURES[0]!r}] are given more than once" in twice.json()["error"]
    assert listed.status_code == 400, listed.text
    assert listed.json()["error"].startswith("the body: ")


def test_v2_more_instances_than_the_limit_is_413(trained, settings):
    rows = [STUDENTS[0]] * (settings.max_predict_instances + 1)

    answer = trained["api"].post("/v2/models/risk/infer", json=pandas_request(rows))

    assert answer.status_code == 413, answer.text
    assert "exceed the limit" in answer.json()["error"]


def test_v2_errors_for_unknown_models_and_missing_keys(trained):
    unknown = trained["api"].post(
        "/v2/models/no-such-model/infer", json=pandas_request(STUDENTS)
    )
    no_key = httpx.post(
        f"{trained['url']}/v2/models/risk/infer",
        json=pandas_request(STUDENTS),
        timeout=30,
    )
    not_json = trained["api"].post("/v2/models/risk/infer", content=b"{")

    assert unknown.status_code == 404
    assert isinstance(unknown.json()["error"], str)
    assert no_key.status_code == 401
    assert isinstance(no_key.json()["error"], str)
    assert not_json.status_code == 400


# --- bodies over the limit ------------------------------------------------------------

JSON_LIMIT_BYTES = 10 * 1024 * 1024  # the gateway's limit for JSON bodies
CHUNK_BYTES = 1024 * 1024


def oversized_body() -> Iterator[bytes]:
    """A body past the limit, streamed in chunks (no Content-Length is declared)."""
    yield b'{"instances": ['
    for _ in range(JSON_LIMIT_BYTES // CHUNK_BYTES + 1):
        yield b" " * CHUNK_BYTES
    yield b"]}"


def post_oversized(trained: dict[str, Any], path: str, chunked: bool) -> httpx.Response:
    body = oversized_body() if chunked else b"".join(oversized_body())
    return httpx.post(
        f"{trained['url']}{path}",
        content=body,
        headers={
            "Authorization": f"Bearer {trained['key']}",
            "Content-Type": "application/json",
        },
        timeout=60,
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_oversized_mlflow_body_is_413_in_mlflows_error_shape(trained, chunked):
    answer = post_oversized(trained, "/v1/models/risk/invocations", chunked)

    assert answer.status_code == 413, answer.text
    assert set(answer.json()) == {"error_code", "message"}
    assert answer.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "exceeds the limit" in answer.json()["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_oversized_v2_body_is_413_in_v2s_error_shape(trained, chunked):
    answer = post_oversized(trained, "/v2/models/risk/infer", chunked)

    assert answer.status_code == 413, answer.text
    assert set(answer.json()) == {"error"}
    assert isinstance(answer.json()["error"], str)
    assert "exceeds the limit" in answer.json()["error"]


def test_an_oversized_v1_body_keeps_the_platforms_error_shape(trained):
    answer = post_oversized(trained, "/v1/models/risk/predict", chunked=False)

    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
