"""Moodle's machine-learning backend protocol, replayed from recorded requests.

A real Moodle backend app (uvicorn, ``services.gateway.moodle.app``) runs
against the session stack: the gateway, one worker per queue, Redis and
SeaweedFS. Its users belong to a tenant made for this module, so the Moodle
models are checked through that tenant's ``/v1`` too. The recordings are in
``tests/data/moodle`` (see its README); their form fields come from its
``manifest.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import random
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from scripts import stack
from services.gateway.moodle import archive
from services.gateway.moodle.csvfile import (
    read_labelled,
    read_unlabelled,
    write_labelled,
)
from services.gateway.moodle.store import model_name
from services.gateway.moodle.users import UsersSettingError, hashed_entry, parse_users
from shared.errors import InvalidInput
from shared.settings import Settings
from tests.conftest import (
    ARTIFACTS,
    TenantAccess,
    client_with_key,
    create_tenant,
    free_port,
    stack_env,
)

# Trainings on thousands of samples wait for the whole job, its evaluation too.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "moodle"
MANIFEST = {
    entry["file"]: entry
    for entry in json.loads((RECORDINGS / "manifest.json").read_text())["files"]
}
USER, PASSWORD = "moodle-site", "sshhhh_2024"
HASHED_USER, HASHED_PASSWORD, SALT = (
    "hashed-site",
    "another-secret",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
)
LONG_S = 900  # seconds a request may take: a training waits for its job


@dataclass(frozen=True)
class Backend:
    url: str
    tenant: TenantAccess

    def post(
        self,
        path: str,
        auth: tuple[str, str] | None = (USER, PASSWORD),
        files: dict[str, Any] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", data=fields, files=files, auth=auth, timeout=LONG_S
        )

    def get(
        self, path: str, auth: tuple[str, str] | None = (USER, PASSWORD), **params: Any
    ) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, auth=auth, timeout=LONG_S)

    def send(self, path: str, recording: str, **fields: Any) -> dict[str, Any]:
        """Replay a recording to ``path`` with its own uniqueid and dirhash."""
        given = {**MANIFEST[recording]["form_fields"], **fields}
        answer = self.post(
            path, files={"dataset": ("data.csv", read(recording))}, **given
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def write_unlabelled(samples: Any) -> bytes:
    """A prediction file for labelled samples: ids ``s0``, ``s1``, ... first."""
    lines = [
        "nfeatures,targetclasses,targettype",
        f'{len(samples.names)},"{json.dumps(samples.classes)}",discrete',
        ",".join(["sampleid", *samples.names]),
    ]
    for position, row in enumerate(samples.X.itertuples(index=False)):
        lines.append(",".join([f"s{position}", *(f"{value:g}" for value in row)]))
    return "\n".join(lines).encode()


def read(recording: str) -> bytes:
    data = (RECORDINGS / recording).read_bytes()
    return gzip.decompress(data) if recording.endswith(".gz") else data


def form(recording: str) -> dict[str, str]:
    return dict(MANIFEST[recording]["form_fields"])


@pytest.fixture(scope="module")
def moodle(gateway_url: str, settings: Settings) -> Iterator[Backend]:
    with client_with_key(gateway_url, settings.admin_api_key) as admin:
        tenant = create_tenant(gateway_url, admin, "Moodle of the test school")
    digest = hashlib.sha256((SALT + HASHED_PASSWORD).encode()).hexdigest()
    users = (
        f"{USER}:{PASSWORD}@{tenant.id},"
        f"{HASHED_USER}:sha256:{SALT}:{digest}@{tenant.id}"
    )
    port = free_port()
    env = {**stack_env(settings), "MOODLE_BACKEND_USERS": users}
    process = stack.start_moodle(
        "127.0.0.1", port, ARTIFACTS / "logs" / "moodle.log", env
    )
    yield Backend(f"http://127.0.0.1:{port}", tenant)
    stack.stop(process)
    tenant.client.close()


@pytest.fixture(scope="module")
def trained_366(moodle: Backend) -> dict[str, Any]:
    """The 366-feature model, trained once from its recorded training request."""
    answer = moodle.send("/training", "test-366-1904-training.csv.gz")
    assert answer["status"] == 0, answer
    return answer


def predictions_of(answer: dict[str, Any]) -> dict[str, tuple[str, float]]:
    assert answer["status"] == 0, answer
    return {
        sample: (category, float(score))
        for sample, category, score in answer["predictions"]
    }


# --- the HTTP layer --------------------------------------------------------------


def test_version_needs_no_credentials_and_answers_bare_text(moodle):
    answer = moodle.get("/version", auth=None)

    assert answer.status_code == 200
    assert answer.text == "3.0.5"
    assert moodle.post("/version", auth=None).status_code == 405


@pytest.mark.parametrize(
    "auth", [None, (USER, "wrong"), ("nobody", PASSWORD), (USER, "")]
)
def test_missing_or_wrong_credentials_get_401_without_a_challenge(moodle, auth):
    answer = moodle.post(
        "/training",
        auth=auth,
        files={"dataset": ("d.csv", b"x")},
        uniqueid="u",
        dirhash="d",
    )

    assert answer.status_code == 401
    assert "www-authenticate" not in answer.headers
    assert answer.headers["content-type"].startswith("text/plain")


def test_a_wrong_method_is_405_before_credentials_are_checked(moodle):
    assert moodle.get("/training", auth=None).status_code == 405
    assert moodle.post("/evaluationlog", auth=None).status_code == 405


def test_a_hashed_password_entry_lets_its_user_in(moodle):
    answer = moodle.post(
        "/deletemodel",
        auth=(HASHED_USER, HASHED_PASSWORD),
        uniqueid=f"nothing-{uuid.uuid4().hex}",
    )

    assert answer.status_code == 200
    assert answer.text == "Ok"


def test_a_missing_parameter_or_file_is_400_with_its_name(moodle):
    no_dirhash = moodle.post(
        "/training", files={"dataset": ("d.csv", b"x")}, uniqueid="u"
    )
    no_file = moodle.post("/prediction", uniqueid="u", dirhash="d")

    assert no_dirhash.status_code == 400
    assert "dirhash" in no_dirhash.text
    assert no_file.status_code == 400
    assert "dataset" in no_file.text


# --- training and prediction -------------------------------------------------


@pytest.mark.parametrize("recording", ["tiny-data-set.csv", "tiny-data-set-2.csv"])
def test_tiny_recorded_sets_are_accepted_with_status_0(moodle, recording):
    answer = moodle.send("/training", recording)

    assert answer["status"] == 0
    assert isinstance(answer["status"], int)
    assert answer["info"] == []


@pytest.mark.parametrize("recording", ["tiny-data-set.csv", "tiny-data-set-2.csv"])
def test_tiny_recorded_sets_are_trained_and_predict_every_sample(moodle, recording):
    fields = {"uniqueid": f"tiny-{uuid.uuid4().hex}", "dirhash": uuid.uuid4().hex}
    samples = read_labelled(read(recording), 100, 100)
    unlabelled = write_unlabelled(samples)

    trained = moodle.send("/training", recording, **fields)
    answer = moodle.post(
        "/prediction", files={"dataset": ("data.csv", unlabelled)}, **fields
    ).json()

    assert trained["status"] == 0, trained
    assert trained["version"] == 1
    assert "none held out" in trained["notes"][0]
    predicted = predictions_of(answer)
    assert set(predicted) == {f"s{i}" for i in range(len(samples.y))}
    assert all(
        category in ("0", "1") and 0.5 <= score <= 1
        for category, score in predicted.values()
    )


def test_a_tiny_set_stays_too_small_for_a_v1_job(moodle):
    fields = {"uniqueid": f"tiny-{uuid.uuid4().hex}", "dirhash": uuid.uuid4().hex}
    api = moodle.tenant.client
    trained = moodle.send("/training", "tiny-data-set.csv", **fields)
    job = api.get(f"/v1/jobs/{trained['job_id']}").json()
    version = api.get(f"/v1/models/{trained['model']}/versions/1").json()

    again = api.post(
        "/v1/jobs",
        json={
            "model": f"{trained['model']}-v1",
            "dataset_id": job["dataset_id"],
            "target": job["target"],
        },
    )

    assert job["status"] == "rejected"
    assert job["decision"]["reason"].startswith("not evaluated")
    assert version["rows"] == {"train": 2, "test": 0}
    assert api.get(f"/v1/models/{trained['model']}").json()["champion"] == 1
    assert again.status_code == 422
    assert "per class" in again.json()["error"]["message"]


def test_predicting_with_a_model_never_trained_answers_status_2(moodle):
    answer = moodle.send(
        "/prediction",
        "test-366-252-prediction.csv",
        uniqueid=f"never-{uuid.uuid4().hex}",
    )

    assert answer == {"status": 2, "info": ["Provided model have not been trained yet"]}


def test_a_batch_lacking_a_class_answers_status_8_and_is_not_kept(moodle):
    only_zeros = (
        b'nfeatures,targetclasses,targettype\n2,"[0,1]",discrete\n'
        b"a,b,target\n" + b"".join(b"0.%d,1,0\n" % i for i in range(12))
    )
    fields = {"uniqueid": f"one-class-{uuid.uuid4().hex}", "dirhash": "d" * 32}

    answer = moodle.post(
        "/training", files={"dataset": ("d.csv", only_zeros)}, **fields
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == 8
    assert isinstance(answer.json()["errors"], str)


def test_trainings_sent_at_once_run_in_turn_and_the_last_serves_all_samples(
    moodle,
):
    fields = {"uniqueid": f"at-once-{uuid.uuid4().hex}", "dirhash": "abc"}
    batches = [curved_training_file(30, seed) for seed in (11, 12, 13)]

    def send(data: bytes) -> dict[str, Any]:
        answer = moodle.post("/training", files={"dataset": ("d.csv", data)}, **fields)
        return dict(answer.json())

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        answers = list(pool.map(send, batches))

    assert [answer["status"] for answer in answers] == [0, 0, 0], answers
    assert sorted(answer["samples"] for answer in answers) == [30, 60, 90]
    last = max(answers, key=lambda answer: answer["samples"])
    model = moodle.tenant.client.get(f"/v1/models/{last['model']}").json()
    assert model["champion"] == last["version"]


def test_double_train_sequence_trains_on_all_samples_and_beats_the_baseline(moodle):
    first = moodle.send("/training", "double-train-train.csv.gz")
    second = moodle.send("/training", "double-train-train2.csv.gz")
    answer = moodle.send("/prediction", "double-train-predict.csv.gz")

    assert (first["status"], first["version"], first["samples"]) == (0, 1, 318)
    assert (second["status"], second["version"], second["samples"]) == (
        0,
        2,
        318 + 9238,
    )
    truth = json.loads((RECORDINGS / "double-train-answers.json").read_text())
    predicted = predictions_of(answer)
    assert set(predicted) == set(truth)
    assert all(
        category in ("0", "1") and 0.5 <= score <= 1
        for category, score in predicted.values()
    )
    correct = sum(
        int(predicted[sample][0]) == int(label) for sample, label in truth.items()
    )
    positives = sum(int(label) for label in truth.values())
    found = sum(
        int(predicted[sample][0]) == 1 for sample, label in truth.items() if label
    )
    baseline = max(positives, len(truth) - positives)
    print(
        f"double-train: accuracy {correct / len(truth):.4f}, baseline "
        f"{baseline / len(truth):.4f}, at-risk found {found}/{positives}"
    )
    assert correct / len(truth) > 0.8
    assert correct > baseline
    assert found / positives > 0.5


def test_a_moodle_model_appears_in_v1_with_versions_reports_and_jobs(
    moodle, trained_366
):
    api = moodle.tenant.client
    name = trained_366["model"]

    models = api.get("/v1/models").json()["models"]
    model = api.get(f"/v1/models/{name}").json()
    version = api.get(f"/v1/models/{name}/versions/{trained_366['version']}").json()
    job = api.get(f"/v1/jobs/{trained_366['job_id']}").json()

    assert name == "moodle-ba7b398b1a26-523dda85"
    assert name in [entry["model"] for entry in models]
    assert model["champion"] == trained_366["version"]
    assert version["rows"]["train"] + version["rows"]["test"] == 1904
    assert version["evaluation"]["metrics"] is not None
    assert job["status"] in ("deployed", "rejected")
    assert job["algorithm"] == "hist_gradient_boosting"


def test_the_366_job_reports_importance_within_its_budget(moodle, trained_366):
    api = moodle.tenant.client
    name, number = trained_366["model"], trained_366["version"]

    report = api.get(f"/v1/models/{name}/versions/{number}").json()["evaluation"]
    job = api.get(f"/v1/jobs/{trained_366['job_id']}").json()
    card = api.get(f"/v1/models/{name}/versions/{number}/card").text
    page = api.get(f"/ui/models/{name}?version={number}").text

    scope = report["importance_scope"]
    print("366 evaluation costs:", job["costs"]["evaluation"], "importance:", scope)
    assert scope["measured"] <= Settings().importance_max_features
    assert scope["constant"] > 0
    assert scope["measured"] + scope["constant"] + scope["not_measured"] == (
        len(report["importance"])
    )
    assert not scope["complete"]
    assert scope["note"] in card
    assert str(escape(scope["note"])) in page
    measured = [item for item in report["importance"] if item["importance"]]
    assert measured == sorted(measured, key=lambda item: -item["importance"])


def test_the_366_feature_pair_predicts_every_sample(moodle, trained_366):
    answer = moodle.send("/prediction", "test-366-252-prediction.csv")

    predicted = predictions_of(answer)
    assert len(answer["predictions"]) == 252
    assert set(predicted) == {f"sample-{i}" for i in range(1, 253)}
    assert all(isinstance(sample, str) for sample, _, _ in answer["predictions"])
    assert all(
        category in ("0", "1") and 0.5 <= score <= 1
        for category, score in predicted.values()
    )


def test_a_batch_with_another_feature_count_is_refused_with_status_1(
    moodle, trained_366
):
    answer = moodle.send(
        "/training",
        "double-train-train.csv.gz",
        **form("test-366-1904-training.csv.gz"),
    )

    assert answer["status"] == 1
    assert "365" in answer["info"][0]


# --- evaluation -------------------------------------------------------------------


def evaluate(moodle: Backend, **fields: Any) -> dict[str, Any]:
    base = {"minscore": "0", "maxdeviation": "1.0", "niterations": "1"}
    return moodle.send(
        "/evaluation", "test-366-1904-training.csv.gz", **{**base, **fields}
    )


def test_the_366_evaluation_reaches_the_reference_backends_quality(moodle):
    result = evaluate(moodle)

    print(
        "366 evaluation:",
        {
            k: result.get(k)
            for k in (
                "accuracy",
                "f1_score",
                "precision",
                "recall",
                "score",
                "balanced accuracy",
            )
        },
    )
    assert result["status"] == 0
    for name in ("accuracy", "f1_score", "score"):
        assert 0.75 <= result[name] <= 0.95, (name, result[name])
    for name in ("precision", "recall"):
        assert 0.70 <= result[name] <= 0.95, (name, result[name])
    # Not the majority class for everyone: the rare class is found too.
    assert result["balanced accuracy"] >= 0.7
    assert result["accuracy"] >= 0.8
    assert result["score_deviation"] == 0
    assert (result["min_score"], result["accepted_deviation"]) == (0, 1.0)
    assert isinstance(result["runid"], int)


@pytest.mark.parametrize(
    "fields, status, words",
    [
        ({"niterations": "1.5"}, 400, "'niterations' must be a whole number"),
        ({"niterations": "-3"}, 400, "'niterations' must be a whole number"),
        ({"minscore": "0.7x"}, 400, "'minscore' must be a finite number"),
        ({"maxdeviation": "nan"}, 400, "'maxdeviation' must be a finite number"),
        ({"minscore": "-1"}, 200, "minscore must be 0 to 1"),
        ({"niterations": "0"}, 200, "niterations must be 1 to 100"),
    ],
    ids=["fraction", "negative_count", "letters", "nan", "negative", "none"],
)
def test_evaluation_numbers_are_read_whole_or_refused(moodle, fields, status, words):
    base = {"minscore": "0", "maxdeviation": "1", "niterations": "1"}
    answer = moodle.post(
        "/evaluation",
        files={"dataset": ("d.csv", curved_training_file(40, 1))},
        uniqueid=f"numbers-{uuid.uuid4().hex}",
        dirhash="abc",
        **{**base, **fields},
    )

    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json()["status"] == 1
        assert words in answer.json()["info"][0]
    else:
        assert words in answer.text


def test_an_evaluation_with_no_iteration_run_says_why(moodle):
    two_samples = curved_training_file(2, 1)
    labels = [float(line.rsplit(b",", 1)[1]) for line in two_samples.split(b"\n")[3:]]
    assert sorted(labels) == [0.0, 1.0]  # one of each class: nothing left to train

    result = moodle.post(
        "/evaluation",
        files={"dataset": ("d.csv", two_samples)},
        uniqueid=f"too-few-{uuid.uuid4().hex}",
        dirhash="abc",
        minscore="0",
        maxdeviation="1",
        niterations="2",
    ).json()

    assert result["status"] == 8, result
    assert result["info"][0].startswith("No evaluation iteration could be run")


def test_evaluation_status_bits_follow_minscore_and_maxdeviation(moodle):
    low = evaluate(moodle, minscore="0.99")
    unsteady = evaluate(moodle, minscore="0.99", maxdeviation="0", niterations="3")

    assert low["status"] == 4
    assert unsteady["status"] == 12
    assert len(unsteady["info"]) == 2
    assert unsteady["score_deviation"] > 0
    assert low["runid"] != unsteady["runid"]


def test_an_evaluation_whose_file_lacks_a_class_answers_status_1(moodle):
    only_ones = (
        b'nfeatures,targetclasses,targettype\n1,"[0,1]",discrete\n'
        b"a,target\n" + b"".join(b"0.%d,1\n" % i for i in range(10))
    )

    answer = moodle.post(
        "/evaluation",
        files={"dataset": ("evaluation.csv", only_ones)},
        uniqueid="u",
        dirhash="e",
        minscore="0.7",
        maxdeviation="0.05",
        niterations="10",
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == 1
    assert isinstance(answer.json()["runid"], int)


def test_the_evaluation_log_of_a_run_is_a_zip_with_its_log(moodle):
    result = evaluate(moodle)
    fields = form("test-366-1904-training.csv.gz")

    known = moodle.get("/evaluationlog", runid=result["runid"], **fields)
    unknown = moodle.get("/evaluationlog", runid=0, **fields)

    with zipfile.ZipFile(io.BytesIO(known.content)) as archive:
        assert "iteration 1" in archive.read("info.log").decode()
        assert json.loads(archive.read("result.json"))["runid"] == result["runid"]
    assert unknown.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(unknown.content)).namelist() == ["info.log"]


def test_evaluating_the_trained_model_scores_it_once(moodle, trained_366):
    fields = form("test-366-1904-training.csv.gz")

    result = evaluate(
        moodle,
        dirhash="e" * 32,
        trainedmodeldirhash=fields["dirhash"],
        minscore="0.7",
        maxdeviation="0.05",
        niterations="10",
    )

    assert result["status"] == 0, result
    assert result["score_deviation"] == 0
    assert 0.75 <= result["score"] <= 1


def cos_above_sin(count: int, seed: int) -> tuple[list[list[float]], list[float]]:
    """Samples of a boundary that is not a straight line: class 1 where cos a > sin b.

    The class is written ``1.0``/``0.0``, as some clients of Moodle's backend do.
    """
    generator = random.Random(seed)
    samples, labels = [], []
    for _ in range(count):
        a, b = (generator.uniform(-math.pi, math.pi) for _ in range(2))
        samples.append([a, b])
        labels.append(float(math.cos(a) > math.sin(b)))
    return samples, labels


CURVED_HEADER = 'nfeatures,nclasses,targettype,targetclasses\n2,2,discrete,"[0,1]"\n'


def curved_training_file(count: int, seed: int) -> bytes:
    samples, labels = cos_above_sin(count, seed)
    rows = [f"{a},{b},{label}" for (a, b), label in zip(samples, labels, strict=True)]
    return (CURVED_HEADER + "f0,f1,t0\n" + "\n".join(rows)).encode()


def test_a_curved_boundary_is_learned_and_predicted_from_a_file_naming_its_target(
    moodle,
):
    ids = {"uniqueid": f"curved-{uuid.uuid4().hex}", "dirhash": "abc"}
    samples, labels = cos_above_sin(200, seed=2)
    # Line 3 names the target too, as in a training file; the rows lack it.
    rows = [f"r{i},{a},{b}" for i, (a, b) in enumerate(samples)]
    query = (CURVED_HEADER + "sampleid,f0,f1,t0\n" + "\n".join(rows)).encode()

    trained = moodle.post(
        "/training",
        files={"dataset": ("data.txt", curved_training_file(2000, 1))},
        **ids,
    ).json()
    answer = moodle.post(
        "/prediction", files={"dataset": ("x.txt", query)}, **ids
    ).json()

    assert trained["status"] == 0, trained
    predicted = predictions_of(answer)
    assert len(predicted) == len(labels)
    correct = sum(
        float(predicted[f"r{i}"][0]) == label for i, label in enumerate(labels)
    )
    assert correct / len(labels) > 0.8


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_curved_boundary_is_found_in_an_evaluation_of_100_samples(moodle, seed):
    fields = {"minscore": "0", "maxdeviation": "0", "niterations": "1"}
    data = curved_training_file(100, seed)

    result = moodle.post(
        "/evaluation",
        files={"dataset": ("data.txt", data)},
        uniqueid=f"curved-evaluation-{uuid.uuid4().hex}",
        dirhash="abc",
        **fields,
    ).json()

    assert result["status"] == 0, result
    for name in ("accuracy", "precision", "recall", "f1_score", "score"):
        assert result[name] >= 0.7, (name, result[name])


def test_get_parameters_may_come_as_a_form_body(moodle, trained_366):
    fields = form("test-366-1904-training.csv.gz")
    auth = (USER, PASSWORD)

    def get(path: str, **given: Any) -> httpx.Response:
        return httpx.request(
            "GET", f"{moodle.url}{path}", data=given, auth=auth, timeout=LONG_S
        )

    exported = get("/export", **fields)
    unknown = get("/export", uniqueid=f"never-{uuid.uuid4().hex}", dirhash="123")
    log = get("/evaluationlog", runid=0, **fields)

    assert exported.status_code == 200
    assert "samples.csv" in zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert unknown.status_code == 503
    assert log.status_code == 200


# --- export, import, delete --------------------------------------------------------


def test_export_then_import_predicts_exactly_the_same(moodle, trained_366):
    fields = form("test-366-1904-training.csv.gz")
    copy = {"uniqueid": f"imported-{uuid.uuid4().hex}", "dirhash": uuid.uuid4().hex}

    exported = moodle.get("/export", **fields)
    imported = moodle.post(
        "/import", files={"importzip": ("import.zip", exported.content)}, **copy
    )
    original = moodle.send("/prediction", "test-366-252-prediction.csv")
    again = moodle.send("/prediction", "test-366-252-prediction.csv", **copy)

    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    assert (imported.status_code, imported.text) == (200, "Ok")
    assert again["predictions"] == original["predictions"]


def test_exporting_an_untrained_model_is_503(moodle):
    answer = moodle.get("/export", uniqueid=f"never-{uuid.uuid4().hex}", dirhash="d")

    assert answer.status_code == 503


def test_importing_a_zip_that_is_no_export_is_refused(moodle):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("model.json", json.dumps({"n_features": 2}))

    answer = moodle.post(
        "/import",
        files={"importzip": ("import.zip", archive.getvalue())},
        uniqueid="u",
        dirhash="d",
    )

    assert answer.status_code == 400
    assert "samples.csv" in answer.text


@pytest.mark.parametrize(
    "members, words",
    [
        ({"model.json": "{not json", "samples.csv": ""}, "model.json is not JSON"),
        (None, "importzip: samples.csv: dataset: line 4 holds 1 field(s)"),
    ],
    ids=["manifest_not_json", "samples_unreadable"],
)
def test_an_import_whose_members_cannot_be_read_names_the_member(
    moodle, members, words
):
    if members is None:  # a well-formed export of samples that cannot be read
        samples = b'targetclasses\n"[0,1]"\nf,t\n1\n'
        data = archive.pack_export({"algorithm": "random_forest"}, samples)
    else:
        written = io.BytesIO()
        with zipfile.ZipFile(written, "w") as out:
            for name, text in members.items():
                out.writestr(name, text)
        data = written.getvalue()

    answer = moodle.post(
        "/import", files={"importzip": ("import.zip", data)}, uniqueid="u", dirhash="d"
    )

    assert answer.status_code == 400
    assert words in answer.text


def test_deletemodel_is_idempotent_and_forgets_the_model(moodle):
    fields = {"uniqueid": f"deleted-{uuid.uuid4().hex}", "dirhash": uuid.uuid4().hex}
    trained = moodle.send("/training", "double-train-train.csv.gz", **fields)

    first = moodle.post("/deletemodel", uniqueid=fields["uniqueid"])
    second = moodle.post("/deletemodel", uniqueid=fields["uniqueid"])
    after = moodle.send("/prediction", "double-train-predict.csv.gz", **fields)

    assert trained["status"] == 0
    assert (first.status_code, first.text) == (200, "Ok")
    assert (second.status_code, second.text) == (200, "Ok")
    assert after["status"] == 2
    assert moodle.get("/export", **fields).status_code == 503


# --- pieces without the stack -------------------------------------------------------


def test_user_entries_accept_plain_salted_sha256_and_pbkdf2_passwords():
    salted = hashlib.sha256(("abc" + "pw2").encode()).hexdigest()
    text = (
        f"plain:pw1, salted:sha256:abc:{salted}@t0123456789ab,"
        f"{hashed_entry('strong', 'pw3', 't0123456789ab')}"
    )

    users = parse_users(text, "default")

    assert users["plain"].accepts("pw1") and not users["plain"].accepts("pw2")
    assert users["salted"].accepts("pw2") and not users["salted"].accepts("pw1")
    assert users["strong"].accepts("pw3") and not users["strong"].accepts("pw1")
    assert users["plain"].tenant == "default"
    assert users["salted"].tenant == users["strong"].tenant == "t0123456789ab"
    assert parse_users("", "default") == {}


@pytest.mark.parametrize(
    "text, match",
    [
        ("nopassword", "expected 'user:password'"),
        ("a:b,a:c", "listed twice"),
        ("a:b@../etc", "tenant must be a tenant id"),
        ("a:md5x:salt:00", "hashed password reads"),
    ],
)
def test_bad_user_entries_are_refused_with_the_entry_named(text, match):
    with pytest.raises(UsersSettingError, match=match):
        parse_users(text, "default")


def test_with_authentication_on_every_user_names_a_tenant():
    named = parse_users("a:pw1@t0123456789ab", "default", tenant_required=True)

    assert named["a"].tenant == "t0123456789ab"
    for text in ("a:pw1", "a:pw1@t0123456789ab, b:pw2", "b:pw2@default"):
        with pytest.raises(UsersSettingError, match="with ADMIN_API_KEY set, name"):
            parse_users(text, "default", tenant_required=True)


def test_a_backend_that_cannot_start_fails_at_once_with_its_log(settings, tmp_path):
    env = {
        **stack_env(settings),
        "MOODLE_BACKEND_USERS": "school:pw1",  # no tenant, with ADMIN_API_KEY set
    }
    log = tmp_path / "moodle.log"
    started = time.monotonic()

    with pytest.raises(RuntimeError) as refused:
        stack.start_moodle("127.0.0.1", free_port(), log, env)

    assert time.monotonic() - started < stack.START_TIMEOUT_S / 3
    assert "the Moodle backend exited with code" in str(refused.value)
    assert "with ADMIN_API_KEY set, name the user's tenant" in str(refused.value)


def test_model_names_keep_hex_ids_and_hash_the_others():
    assert model_name("31db0e169fe00259c6ca", "68775ee1806d33c8") == (
        "moodle-31db0e169fe0-68775ee1"
    )
    assert model_name("whatever050829900", "abc").startswith("moodle-")
    assert len(model_name("whatever050829900", "abc")) == len("moodle-") + 12 + 1 + 8


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b'targetclasses\n"[0,1]"\nf,t\n1,2\n', "does not list"),
        (b'targetclasses\n"[0,1]"\nf,t\n1,0,3\n', "line 4 holds 3 field.s. but line 3"),
        (
            b'targetclasses\n"[0,1]"\nf,t\n1,0\n1\n',
            "line 5 holds 1 field.s. but line 3",
        ),
        (b'targetclasses\n"[0,1]"\nf,t\n1,0\n\n"1",0,0\n', "line 6 holds 3 field"),
        (
            b'targetclasses\n"[0,1]"\nf,t\n1,0\nx,0\n',
            "line 5, column 1 .'f'. holds 'x', which is not a number .a training",
        ),
        (b'targetclasses\n"[0,1]"\nf,g,t\n1, abc ,0\n', "column 2 .'g'. holds ' abc '"),
        (b'targetclasses\n"zero"\nf,t\n1,0\n', "JSON list"),
        (b'nfeatures,targetclasses\n5,"[0,1]"\nf,t\n1,0\n', "nfeatures says 5"),
        (b'targetclasses,targettype\n"[0,1]",linear\nf,t\n1,0\n', "no regression"),
    ],
)
def test_unreadable_moodle_files_are_refused_with_the_reason(data, match):
    with pytest.raises(InvalidInput, match=match):
        read_labelled(data, max_rows=100, max_columns=100)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"nfeatures\n2\nid,f,g\ns1,1,2\ns2,1\n", "line 5 holds 2 field.s. but line 3"),
        (b"nfeatures\n2\nid,f,g\ns1,1,2,0\n", "line 4 holds 4 field.s. but line 3"),
        (b"nfeatures\n2\nid,f,g\ns1,1,often\n", "line 4, column 3 .'g'. holds 'often'"),
    ],
)
def test_unreadable_prediction_files_are_refused_naming_the_line(data, match):
    with pytest.raises(InvalidInput, match=match):
        read_unlabelled(data, max_rows=100, max_columns=100)


def test_blank_lines_are_skipped_and_sample_ids_kept_as_text():
    batch = read_unlabelled(
        b'nfeatures\n2\nid,f,g\n007,1,\n\n  \n"s,2",nan,0.5\n', 100, 100
    )

    assert batch.ids == ["007", "s,2"]
    assert batch.X.to_numpy().tolist()[0][0] == 1.0
    assert batch.X.isna().to_numpy().tolist() == [[False, True], [True, False]]


def test_a_labelled_file_written_for_export_reads_back_to_the_same_samples():
    original = read_labelled(read("test-366-1904-training.csv.gz"), 10_000, 1_000)

    copy = read_labelled(
        write_labelled(
            original.names, original.target, original.X, original.y, original.classes
        ),
        10_000,
        1_000,
    )

    assert copy.names == original.names
    assert copy.X.equals(original.X)
    assert (copy.y == original.y).all()
