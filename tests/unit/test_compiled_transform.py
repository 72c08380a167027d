"""The compiled transform gives scikit-learn's predictions on real student data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.serving.compiled import UNSEEN, compile_pipeline
from services.serving.tasks import feature_frame, predict_frame
from shared.pipelines import build_pipeline
from shared.registry import ArtifactRef, FeatureSpec, VersionRecord

DATA = Path(__file__).resolve().parents[2] / "data"

# (file, target, numeric features, text features, task)
CASES = {
    "chem97-at-risk": (
        "chem97.csv",
        "at_risk",
        ["age", "gcsescore"],
        ["gender"],
        "classification",
    ),
    "exam-score": (
        "exam.csv",
        "normexam",
        ["standLRT", "schavg"],
        ["schgend", "vr", "intake", "sex", "type"],
        "regression",
    ),
    "star-reading": (
        "star.csv",
        "read3",
        ["readk", "read1", "experience3"],
        ["gender", "ethnicity", "star3", "lunch3", "school3", "degree3"],
        "regression",
    ),
    "star-lunch": (
        "star.csv",
        "lunch3",
        ["readk", "read1", "math1"],
        ["gender", "ethnicity", "star3", "school3", "ladder3"],
        "classification",
    ),
}
ALGORITHMS = ["linear", "hist_gradient_boosting", "random_forest"]
TRAIN_ROWS, CHECK_ROWS = 3_000, 500


def frame_of(case: str) -> tuple[pd.DataFrame, pd.Series, list[str], list[str], str]:
    file, target, numeric, text, task = CASES[case]
    frame = pd.read_csv(DATA / file)
    if target == "at_risk":
        frame[target] = (frame["score"] <= 4).astype(int)
    frame = frame[frame[target].notna()].sample(TRAIN_ROWS + CHECK_ROWS, random_state=3)
    for column in text:
        frame[column] = (
            frame[column]
            .map(lambda value: value if pd.isna(value) else str(value))
            .astype(object)
        )
    return frame[numeric + text], frame[target], numeric, text, task


def record_of(
    case: str, numeric: list[str], text: list[str], pipeline
) -> VersionRecord:
    task = CASES[case][4]
    classes = list(pipeline.classes_) if task == "classification" else None
    return VersionRecord(
        tenant="t",
        model=case,
        version=1,
        job_id="j",
        dataset_id="d",
        task=task,
        target=CASES[case][1],
        features=[FeatureSpec(name=n, type="numeric") for n in numeric]
        + [FeatureSpec(name=n, type="categorical") for n in text],
        algorithm="x",
        seed=1,
        classes=classes,
        has_proba=classes is not None,
        artifact=ArtifactRef(key="k", sha256="0" * 64, bytes=1),
        libraries={},
        fit_seconds=0.0,
        rows={},
        test_rows=[],
        reference={n: 0.0 for n in numeric},
    )


def rows_as_sent(frame: pd.DataFrame, record: VersionRecord) -> list[list]:
    """What the gateway hands serving: floats or None, text or None."""
    rows = []
    for values in frame[[f.name for f in record.features]].itertuples(index=False):
        row = []
        for feature, value in zip(record.features, values, strict=True):
            if pd.isna(value):
                row.append(None)
            elif feature.type == "numeric":
                row.append(float(value))
            else:
                row.append(str(value))
        rows.append(row)
    return rows


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_predictions_equal_scikit_learn(case: str, algorithm: str) -> None:
    features, target, numeric, text, task = frame_of(case)
    pipeline = build_pipeline(task, algorithm, numeric, text, seed=5)
    pipeline.fit(features.iloc[:TRAIN_ROWS], target.iloc[:TRAIN_ROWS])
    record = record_of(case, numeric, text, pipeline)
    compiled = compile_pipeline(record, pipeline)
    assert compiled is not None, "the platform's own pipelines must compile"

    held_out = features.iloc[TRAIN_ROWS:]
    rows = rows_as_sent(held_out, record)
    # Also a category never seen in training, and a row with everything missing.
    rows.append([None] * len(record.features))
    rows.append(
        [
            r if f.type == "numeric" else UNSEEN
            for r, f in zip(rows[0], record.features, strict=True)
        ]
    )
    columns = [f.name for f in record.features]
    expected, expected_proba = predict_frame(
        record, pipeline, feature_frame(record, columns, rows)
    )
    estimator = pipeline.steps[-1][1]
    matrix = compiled.transform(rows)
    assert np.array_equal(estimator.predict(matrix), expected)
    if expected_proba is not None:
        got = estimator.predict_proba(matrix)
        assert np.abs(got - expected_proba).max() <= 1e-6
    else:
        assert np.abs(estimator.predict(matrix) - expected).max() <= 1e-6


def test_a_pipeline_of_another_shape_is_not_compiled() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    features, target, numeric, text, _ = frame_of("chem97-at-risk")
    pipeline = make_pipeline(MinMaxScaler(), LogisticRegression())
    pipeline.fit(features[numeric], target)
    record = record_of("chem97-at-risk", numeric, [], pipeline)
    assert compile_pipeline(record, pipeline) is None
