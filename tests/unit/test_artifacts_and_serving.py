"""Loading stored pipelines (checks first) and serving's plain-JSON answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from services.serving.tasks import run_pipeline
from shared import artifacts
from shared.errors import ArtifactRejected, NotFound
from shared.pipelines import build_pipeline
from shared.registry import ArtifactRef, FeatureSpec, VersionRecord


def fitted(task: str = "classification"):
    frame = pd.DataFrame(
        {"hours": np.arange(40, dtype=float), "group": ["a", "b"] * 20}
    )
    target = (
        (frame["hours"] > 20).astype("int64")
        if task == "classification"
        else frame["hours"] * 2.5
    )
    pipeline = build_pipeline(task, "linear", ["hours"], ["group"], seed=42)
    return pipeline.fit(frame, target)


def record_for(pipeline, storage=None, **changes) -> VersionRecord:
    data = artifacts.dump(pipeline)
    key = "artifacts/job/pipeline.pkl"
    digest = storage.put_verified(key, data) if storage else "0" * 64
    fields = dict(
        tenant="t",
        model="student-risk",
        version=7,
        job_id="job",
        dataset_id="d",
        task="classification",
        target="passed",
        features=[
            FeatureSpec(name="hours", type="numeric"),
            FeatureSpec(name="group", type="categorical"),
        ],
        algorithm="linear",
        seed=42,
        classes=[0, 1],
        has_proba=True,
        artifact=ArtifactRef(key=key, sha256=digest, bytes=len(data)),
        libraries=artifacts.library_versions(),
        fit_seconds=0.1,
        rows={"train": 32, "test": 8},
        test_rows=[],
    )
    fields.update(changes)
    return VersionRecord(**fields)


def test_stored_pipeline_loads_after_its_checks(storage):
    pipeline = fitted()
    record = record_for(pipeline, storage)

    loaded = artifacts.load(storage, record)

    frame = pd.DataFrame({"hours": [3.0, 30.0], "group": ["a", "b"]})
    assert list(loaded.predict(frame)) == list(pipeline.predict(frame))


def test_c26_checksum_mismatch_is_refused(storage):
    record = record_for(fitted(), storage)
    storage.put_bytes(record.artifact.key, b"truncated")

    with pytest.raises(
        ArtifactRejected, match=r"artifact checksum mismatch for student-risk v7"
    ):
        artifacts.load(storage, record)


def test_c11_library_mismatch_is_refused_with_both_versions(storage):
    libraries = {**artifacts.library_versions(), "scikit-learn": "1.3.2"}
    record = record_for(fitted(), storage, libraries=libraries)

    with pytest.raises(
        ArtifactRejected, match=r"built with scikit-learn 1\.3\.2, this service has"
    ):
        artifacts.load(storage, record)


def test_deleted_version_is_not_loaded(storage):
    record = record_for(fitted(), storage, deleted_at="2026-01-01T00:00:00+00:00")

    with pytest.raises(NotFound, match=r"student-risk v7 was deleted"):
        artifacts.load(storage, record)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_c08_serving_answers_are_plain_json(task):
    pipeline = fitted(task)
    record = record_for(
        pipeline,
        task=task,
        has_proba=task == "classification",
        classes=[0, 1] if task == "classification" else None,
    )

    answer = run_pipeline(record, pipeline, ["group", "hours"], [["a", 3], ["b", None]])

    text = json.dumps(answer, allow_nan=False)
    assert json.loads(text) == answer
    assert all(type(value) in (int, float) for value in answer["predictions"])
