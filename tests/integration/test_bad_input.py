"""Bad input gets a 4xx JSON error that names the problem, never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import CASES
from tests.integration.flow import train, upload, upload_ok

pytestmark = pytest.mark.integration

SMALL = "student_id,hours,absences,passed\n" + "\n".join(
    f"S{i:02d},{i % 7},{i % 5},{int(i % 7 > 2)}" for i in range(30)
)


def error_of(answer) -> str:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    return str(answer.json()["error"]["message"])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV"),
        (b"", "empty"),
        (b"student_id,hours,passed\n", "no data rows"),
    ],
    ids=["not-csv", "empty", "header-only"],
)
def test_unusable_files_are_refused_with_the_reason(api, data, expected):
    answer = upload(api, data)

    assert answer.status_code == 422
    assert expected in error_of(answer)


def test_unknown_dataset_is_404(api, model_name):
    answer = api.post(
        "/v1/jobs", json={"model": model_name, "dataset_id": "nope", "target": "passed"}
    )

    assert answer.status_code == 404
    assert "'nope'" in error_of(answer)


def test_unknown_target_names_the_columns(api, model_name):
    dataset = upload_ok(api, SMALL.encode())

    answer = api.post(
        "/v1/jobs",
        json={"model": model_name, "dataset_id": dataset["id"], "target": "G3"},
    )

    assert answer.status_code == 422
    assert "'G3'" in error_of(answer) and "'hours'" in error_of(answer)


def test_unknown_feature_is_named(api, model_name):
    dataset = upload_ok(api, SMALL.encode())

    answer = api.post(
        "/v1/jobs",
        json={
            "model": model_name,
            "dataset_id": dataset["id"],
            "target": "passed",
            "features": ["hours", "age"],
        },
    )

    assert answer.status_code == 422
    assert "'age'" in error_of(answer)


def test_c12_single_class_target_is_refused_before_queueing(api, model_name):
    dataset = upload_ok(api, (CASES / "c12.csv").read_bytes())

    answer = api.post(
        "/v1/jobs",
        json={"model": model_name, "dataset_id": dataset["id"], "target": "passed"},
    )

    assert answer.status_code == 422
    assert error_of(answer) == (
        "target column 'passed' has only one class (1); classification needs at least two"
    )
    assert api.get(f"/v1/models/{model_name}").status_code == 404


def test_c13_too_few_rows_for_the_split_is_refused(api, model_name):
    tiny = "student_id,hours,passed\nS1,1,0\nS2,2,1\nS3,3,0\nS4,4,1\nS5,5,1\n"
    dataset = upload_ok(api, tiny.encode())

    answer = api.post(
        "/v1/jobs",
        json={"model": model_name, "dataset_id": dataset["id"], "target": "passed"},
    )

    assert answer.status_code == 422
    assert "5 rows" in error_of(answer) and "at least 10" in error_of(answer)


def test_c13_tiny_class_versus_folds_ends_with_a_clear_outcome(api, model_name):
    dataset = upload_ok(api, (CASES / "c13.csv").read_bytes())

    job = train(api, model=model_name, dataset_id=dataset["id"], target="outcome")

    assert job["status"] in {"deployed", "rejected", "failed"}
    if job["status"] == "failed":
        assert "'fail'" in job["error"]
    else:
        folds = api.get(f"/v1/models/{model_name}/versions/1").json()["selection"]
        assert folds is None or folds["folds"] <= 2


def test_unknown_model_in_predict_is_404(api, model_name):
    answer = api.post(
        f"/v1/models/{model_name}/predict", json={"instances": [{"hours": 1}]}
    )

    assert answer.status_code == 404
    assert model_name in error_of(answer)


def test_bad_model_name_and_unknown_algorithm_are_422(api):
    dataset = upload_ok(api, SMALL.encode())

    bad_name = api.post(
        "/v1/jobs",
        json={"model": "a b/c", "dataset_id": dataset["id"], "target": "passed"},
    )
    bad_algorithm = api.post(
        "/v1/jobs",
        json={
            "model": "ok",
            "dataset_id": dataset["id"],
            "target": "passed",
            "algorithm": "svm",
        },
    )

    assert bad_name.status_code == 422 and "model" in error_of(bad_name)
    assert bad_algorithm.status_code == 422 and "algorithm" in error_of(bad_algorithm)


def test_empty_instances_and_malformed_json_are_422(api, model_name):
    empty = api.post(f"/v1/models/{model_name}/predict", json={"instances": []})
    malformed = api.post(
        f"/v1/models/{model_name}/predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )

    assert empty.status_code == 422
    assert malformed.status_code == 422
    assert error_of(malformed).startswith("body: the body is not valid JSON: ")
    assert "at character 1" in error_of(malformed)


def test_oversized_body_is_413_before_it_is_read(api, model_name):
    body = b'{"instances": [' + b'{"a": 1},' * 2_000_000 + b'{"a": 1}]}'

    answer = api.post(
        f"/v1/models/{model_name}/predict",
        content=body,
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 413
    assert "exceeds the limit" in error_of(answer)


LONE = b'"\\ud800"'  # JSON text for a string holding a lone surrogate


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/models/{model}/predict",
            b'{"instances": [{"hours": ' + LONE + b"}]}",
        ),
        (
            "POST",
            "/v1/jobs",
            b'{"model": "{model}", "dataset_id": "d", "target": ' + LONE + b"}",
        ),
        ("PUT", "/v1/policy", b'{"protected_attributes": [' + LONE + b"]}"),
        (
            "POST",
            "/v1/models/{model}/invocations",
            b'{"instances": [{"hours": "\\udc00"}]}',
        ),
        ("POST", "/v2/models/{model}/infer", b'{"inputs": [], "id": ' + LONE + b"}"),
    ],
    ids=["predict", "jobs", "policy", "mlflow", "v2"],
)
def test_a_lone_surrogate_in_json_is_refused_before_anything_changes(
    api, model_name, method, path, body
):
    before = api.get("/v1/policy").json()

    answer = api.request(
        method,
        path.format(model=model_name),
        content=body.replace(b"{model}", model_name.encode()),
        headers={"content-type": "application/json"},
    )

    assert answer.status_code in (400, 422), answer.text
    assert "lone UTF-16 surrogate escape" in answer.text
    assert api.get("/v1/policy").json() == before


def test_a_surrogate_pair_and_an_escaped_backslash_are_ordinary_text(api, model_name):
    dataset = upload_ok(api, SMALL.encode())
    pair = b'"S01 \\ud83d\\ude00"'
    backslash = b'"\\\\ud800"'

    for text in (pair, backslash):
        answer = api.post(
            "/v1/jobs",
            content=b'{"model": "%s", "dataset_id": "%s", "target": %s}'
            % (model_name.encode(), dataset["id"].encode(), text),
            headers={"content-type": "application/json"},
        )

        assert answer.status_code == 422, answer.text
        assert "surrogate" not in answer.text and "target" in error_of(answer)


# Logins, unique on every row, under a name not taken for an id column.
LOGINS = "login,hours,absences,passed\n" + "\n".join(
    f"user.{i:02d},{i % 7},{i % 5},{int(i % 7 > 2)}" for i in range(30)
)


def test_a_column_of_unique_text_is_left_out_of_default_features_with_a_note(
    api, model_name
):
    dataset = upload_ok(api, LOGINS.encode())

    answer = api.post(
        "/v1/jobs",
        json={"model": model_name, "dataset_id": dataset["id"], "target": "passed"},
    )
    job = api.get(f"/v1/jobs/{answer.json()['id']}").json()

    assert answer.status_code == 202, answer.text
    assert "column 'login' was left out of the features" in answer.json()["notes"][0]
    assert job["notes"] == answer.json()["notes"]
    assert job["features"] == ["hours", "absences"]


def test_a_column_of_unique_text_named_as_a_feature_is_refused(api, model_name):
    dataset = upload_ok(api, LOGINS.encode())

    answer = api.post(
        "/v1/jobs",
        json={
            "model": model_name,
            "dataset_id": dataset["id"],
            "target": "passed",
            "features": ["login", "hours"],
        },
    )

    assert answer.status_code == 422
    assert "features ['login'] hold a different text value" in error_of(answer)
    assert "name it id_column" in error_of(answer)
