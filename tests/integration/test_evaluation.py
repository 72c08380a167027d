"""Evaluation an education team can trust, end to end through the gateway."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared import keys
from shared.storage import Storage
from tests.conftest import DATA
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration

EXAM = {"target": "normexam", "features": ["standLRT", "schavg", "vr", "intake"]}


@pytest.fixture(scope="module")
def exam_at_risk() -> bytes:
    """exam.csv with an at-risk label (normexam < -0.5) an LMS would send."""
    frame = pd.read_csv(DATA / "exam.csv")
    frame["at_risk"] = (frame["normexam"] < -0.5).astype(int)
    return frame.drop(columns=["normexam"]).to_csv(index=False).encode()


def test_groups_and_pairs_are_reported_and_kept_out_of_the_features(
    api, exam_at_risk, model_name
):
    dataset = upload_ok(api, exam_at_risk)

    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="at_risk",
        group_columns=["sex", "schgend"],
        algorithm="linear",
        group_split_column="school",
    )
    version = api.get(f"/v1/models/{model_name}/versions/1").json()
    card = api.get(f"/v1/models/{model_name}/versions/1/card")

    assert job["status"] == "deployed", job
    features = [feature["name"] for feature in version["features"]]
    assert (
        "sex" not in features and "schgend" not in features and "school" not in features
    )
    groups = version["evaluation"]["groups"]
    assert set(groups) == {"sex", "schgend", "sex+schgend"}
    assert {"F", "M"} <= set(groups["sex"])
    assert all(
        "recall" in figures or figures.get("too_small")
        for figures in groups["sex+schgend"].values()
    )
    assert "F+girls" in groups["sex+schgend"]
    evaluation = version["evaluation"]
    assert evaluation["intervals"]["roc_auc"]["low"] < evaluation["metrics"]["roc_auc"]
    assert evaluation["baseline"]["roc_auc"] == 0.5
    assert evaluation["calibration"]["brier"] is not None
    roc = evaluation["roc"]["candidate"]
    assert roc["version"] == 1
    assert roc["auc"] == pytest.approx(evaluation["metrics"]["roc_auc"], abs=1e-6)
    assert 2 < len(roc["points"]) <= 100 and evaluation["residuals"] is None
    assert evaluation["capacity"]["share"] == 0.1
    assert "by groups of 'school'" in evaluation["validation"]["scheme"]
    assert card.status_code == 200
    assert card.headers["content-type"].startswith("text/markdown")
    assert "### sex+schgend" in card.text and "| F+girls |" in card.text
    assert f"area under the ROC curve {roc['auc']:.4f}" in card.text


def test_card_is_json_on_request(api, exam_at_risk, model_name):
    dataset = upload_ok(api, exam_at_risk)
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="at_risk",
        algorithm="linear",
        group_columns=["sex"],
    )

    card = api.get(
        f"/v1/models/{model_name}/versions/1/card",
        headers={"accept": "application/json"},
    ).json()

    assert card["model"] == model_name
    assert card["excluded_attributes"] and "sex" in card["excluded_attributes"]
    assert card["metrics"]["roc_auc"] > 0.6
    assert card["roc"]["auc"] == pytest.approx(card["metrics"]["roc_auc"], abs=1e-6)
    assert card["roc"]["champion_auc"] is None and card["residuals"] is None
    assert card["history"][0]["action"] == "promote"


def test_a_winner_that_breaks_the_group_gate_is_rejected_with_the_reason(
    api, model_name
):
    rng = np.random.default_rng(7)
    n = 2000
    group = rng.choice(["a", "b"], n)
    skill = rng.normal(size=n)
    signal = np.where(group == "a", skill, rng.normal(size=n))
    at_risk = (skill + rng.normal(scale=0.5, size=n) < -0.3).astype(int)
    weak = skill + rng.normal(scale=2.0, size=n)
    frame = pd.DataFrame(
        {"group": group, "weak": weak, "signal": signal, "at_risk": at_risk}
    )
    dataset = upload_ok(api, frame.to_csv(index=False).encode())
    base = dict(
        model=model_name,
        dataset_id=dataset["id"],
        target="at_risk",
        group_columns=["group"],
        algorithm="linear",
    )

    first = train(api, **base, features=["weak"])
    second = train(
        api,
        **base,
        features=["weak", "signal"],
        gates={"max_group_gap": 0.05, "gap_metric": "recall"},
    )

    assert first["status"] == "deployed"
    assert second["status"] == "rejected", second
    assert second["metrics"]["roc_auc"] > first["metrics"]["roc_auc"]
    assert "recall gap between groups of group" in second["decision"]["reason"]
    assert any("beats champion v1" in r for r in second["decision"]["reasons"])


@pytest.mark.parametrize("written", ["sex", " Sex "], ids=["as_named", "case_spaces"])
def test_protected_attributes_are_refused_as_features(
    api, exam_at_risk, model_name, written
):
    assert (
        api.put("/v1/policy", json={"protected_attributes": [written]}).status_code
        == 200
    )
    dataset = upload_ok(api, exam_at_risk)

    refused = api.post(
        "/v1/jobs",
        json={
            "model": model_name,
            "dataset_id": dataset["id"],
            "target": "at_risk",
            "features": ["sex", "vr"],
        },
    )
    defaulted = api.post(
        "/v1/jobs",
        json={"model": model_name, "dataset_id": dataset["id"], "target": "at_risk"},
    )

    assert refused.status_code == 422
    assert "protected attributes" in refused.json()["error"]["message"]
    assert defaulted.status_code == 422
    assert "'sex'" in defaulted.json()["error"]["message"]


def test_the_same_job_twice_gives_identical_metrics(api, model_name):
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    request = dict(
        model=model_name,
        dataset_id=dataset["id"],
        **EXAM,
        algorithm="linear",
        tuning={"trials": 3, "seconds": 120},
    )

    first = train(api, **request)
    second = train(api, **request)

    assert first["metrics"] == second["metrics"]
    version = api.get(f"/v1/models/{model_name}/versions/2").json()
    first_version = api.get(f"/v1/models/{model_name}/versions/1").json()
    residuals = version["evaluation"]["residuals"]
    assert residuals == first_version["evaluation"]["residuals"]
    assert set(residuals["sample"][0]) == {"predicted", "residual"}
    assert version["evaluation"]["roc"] is None
    assert (
        version["tuning"]["trials"] == 3 and version["tuning"]["stopped_by"] == "trials"
    )
    assert second["status"] == "rejected"
    assert "does not beat champion v1" in second["decision"]["reason"]


def test_manual_promote_and_rollback_are_audited_and_served_at_once(api, model_name):
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")
    url = f"/v1/models/{model_name}"
    instance = {
        "instances": [
            {"standLRT": 0.1, "schavg": 0.2, "vr": "mid 50%", "intake": "mid 50%"}
        ]
    }

    promoted = api.post(f"{url}/versions/2/promote", json={"reason": "term 2 data"})
    served_after_promote = api.post(f"{url}/predict", json=instance).json()["version"]
    rolled = api.post(f"{url}/rollback", json={"reason": "teachers reported odd flags"})
    served_after_rollback = api.post(f"{url}/predict", json=instance).json()["version"]
    entries = api.get(f"{url}/audit").json()["entries"]

    assert promoted.status_code == 200 and promoted.json()["champion"] == 2
    assert served_after_promote == 2
    assert rolled.status_code == 200 and rolled.json()["champion"] == 1
    assert served_after_rollback == 1
    assert [e["action"] for e in entries] == ["promote", "promote", "rollback"]
    assert entries[-1]["reason"] == "teachers reported odd flags"
    assert all(e["actor"] and e["at"] for e in entries)


def test_c34_the_serving_version_cannot_be_deleted(api, model_name):
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")

    refused = api.delete(f"/v1/models/{model_name}/versions/1")
    deleted = api.delete(f"/v1/models/{model_name}/versions/2")
    promote_deleted = api.post(
        f"/v1/models/{model_name}/versions/2/promote", json={"reason": "try"}
    )

    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        f"{model_name} v1 is the champion and serves predictions"
    )
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]
    assert promote_deleted.status_code == 409


def test_explanations_name_features_in_plain_words(api, model_name):
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")

    answer = api.post(
        f"/v1/models/{model_name}/predict",
        json={
            "explain": True,
            "instances": [
                {"standLRT": 2.5, "schavg": 0.0, "vr": "mid 50%", "intake": "mid 50%"},
            ],
        },
    ).json()

    reasons = answer["explanations"][0]
    assert reasons[0]["feature"] == "standLRT"
    assert reasons[0]["contribution"] > 0
    assert {r["feature"] for r in reasons} <= set(EXAM["features"])
    importance = api.get(f"/v1/models/{model_name}/versions/1").json()["evaluation"][
        "importance"
    ]
    assert importance[0]["feature"] == "standLRT"


def test_erasing_a_student_removes_the_rows_and_marks_versions(api, model_name):
    rows = "\n".join(f"S{i:03d},{i % 7},{i % 5},{int(i % 7 > 2)}" for i in range(60))
    dataset = upload_ok(
        api,
        ("student_id,hours,absences,passed\n" + rows).encode(),
        id_column="student_id",
    )
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="passed",
        algorithm="linear",
    )

    erased = api.delete(f"/v1/datasets/{dataset['id']}/students/S007").json()
    again = api.delete(f"/v1/datasets/{dataset['id']}/students/S007").json()

    assert erased["rows_erased"] == 1
    assert erased["versions_marked"] == [{"model": model_name, "version": 1}]
    assert again["rows_erased"] == 0
    assert api.get(f"/v1/datasets/{dataset['id']}").json()["rows"] == 59
    assert len(api.get(f"/v1/models/{model_name}/versions/1").json()["erasures"]) == 1


def test_c11_a_refused_champion_artifact_leaves_the_previous_champion_serving(
    new_tenant, settings, model_name
):
    tenant = new_tenant()
    api = tenant.client
    dataset = upload_ok(api, (DATA / "exam.csv").read_bytes())
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")
    train(api, model=model_name, dataset_id=dataset["id"], **EXAM, algorithm="linear")
    # Version 2 as if an older scikit-learn had built it.
    storage = Storage.from_settings(settings)
    key = keys.version_record(tenant.id, model_name, 2)
    record, _ = storage.get_json(key)
    record["libraries"]["scikit-learn"] = "1.3.2"
    storage.put_json(key, record)
    url = f"/v1/models/{model_name}"
    instance = {
        "instances": [
            {"standLRT": 0.1, "schavg": 0.2, "vr": "mid 50%", "intake": "mid 50%"}
        ]
    }

    promoted = api.post(f"{url}/versions/2/promote", json={"reason": "new term"})
    answer = api.post(f"{url}/predict", json=instance)

    assert promoted.status_code == 200
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 1
    assert body["fallback"]["refused_version"] == 2
    assert "scikit-learn 1.3.2" in body["fallback"]["reason"]
