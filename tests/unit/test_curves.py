"""ROC points and residuals kept in a report: bounded, rounded, plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.evaluation import curves, evidence
from shared.registry import ArtifactRef, FeatureSpec, VersionRecord

CLASSES = ["completed", "dropped_out"]


def version_of(task: str, number: int = 3, seed: int = 42) -> VersionRecord:
    return VersionRecord(
        tenant="t",
        model="m",
        version=number,
        job_id="j",
        dataset_id="d",
        task=task,
        target="y",
        features=[FeatureSpec(name="x", type="numeric")],
        algorithm="linear",
        seed=seed,
        classes=CLASSES if task == "classification" else None,
        has_proba=task == "classification",
        artifact=ArtifactRef(key="k", sha256="0" * 64, bytes=1),
        libraries={},
        fit_seconds=0.0,
        rows={"train": 10, "test": 10},
        test_rows=[],
    )


def scored_rows(rows: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 positive) and distinct probabilities that mostly rank them right."""
    generator = np.random.default_rng(7)
    actual = (generator.random(rows) < 0.3).astype(int)
    scores = 1 / (1 + np.exp(-(2.0 * actual + generator.normal(size=rows))))
    return actual, scores


def classifier_outputs(actual: np.ndarray, scores: np.ndarray) -> evidence.Outputs:
    proba = np.column_stack([1 - scores, scores])
    predicted = np.where(scores >= 0.5, CLASSES[1], CLASSES[0])
    return evidence.Outputs(predicted, proba, scores)


# --- ROC ------------------------------------------------------------------------


def test_roc_is_thinned_to_at_most_100_points_from_corner_to_corner():
    actual, scores = scored_rows()

    curve = curves.roc(actual, scores)

    assert curve is not None
    points = [(p["fpr"], p["tpr"]) for p in curve["points"]]
    assert 2 < len(points) <= curves.ROC_MAX_POINTS < curve["thinned_from"]
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert [y for _, y in points] == sorted(y for _, y in points)
    assert all(round(value, 4) == value for point in points for value in point)
    assert curve["auc"] == pytest.approx(roc_auc_score(actual, scores), abs=1e-6)


def test_roc_of_a_few_rows_keeps_every_threshold():
    curve = curves.roc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))

    assert curve is not None
    assert curve["thinned_from"] == len(curve["points"]) == 5
    assert curve["auc"] == 0.75


def test_roc_is_none_when_the_rows_hold_one_class():
    assert curves.roc(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9])) is None


def test_thinning_keeps_both_ends_and_never_repeats_a_point():
    shown = curves.thinned(1_001, 100)

    assert shown[0] == 0 and shown[-1] == 1_000
    assert len(shown) == 100 == len(set(shown.tolist()))


def test_roc_section_names_the_versions_and_counts_the_positive_class():
    actual, scores = scored_rows(400)
    y = np.where(actual == 1, CLASSES[1], CLASSES[0])
    candidate = version_of("classification", number=3)
    champion = evidence.roc_of(
        version_of("classification", number=2), y, classifier_outputs(actual, scores)
    )

    section = evidence.roc_section(
        candidate, y, classifier_outputs(actual, scores), champion
    )

    assert section is not None and champion is not None
    assert section["candidate"]["version"] == 3 and champion["version"] == 2
    assert section["champion"] is champion
    assert section["rows"] == 400 and section["positives"] == int(actual.sum())
    assert json.loads(json.dumps(section, allow_nan=False)) == section


def test_no_roc_without_probabilities_and_no_residuals_for_a_classifier():
    actual, scores = scored_rows(50)
    y = np.where(actual == 1, CLASSES[1], CLASSES[0])
    labels_only = evidence.Outputs(
        classifier_outputs(actual, scores).predicted, None, None
    )
    version = version_of("classification")

    assert evidence.roc_section(version, y, labels_only, None) is None
    assert evidence.residuals_of(version, y, labels_only) is None


# --- residuals ------------------------------------------------------------------


def regression_rows(rows: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(11)
    predicted = generator.normal(size=rows)
    return predicted + generator.normal(scale=0.5, size=rows), predicted


def test_residuals_keep_a_seeded_sample_and_summarise_every_row():
    actual, predicted = regression_rows(2_000)

    first = curves.residuals(actual, predicted, seed=5)
    again = curves.residuals(actual, predicted, seed=5)
    other = curves.residuals(actual, predicted, seed=6)

    assert first == again and first["sample"] != other["sample"]
    assert len(first["sample"]) == curves.RESIDUALS_MAX_POINTS
    assert first["sampled"] is True and first["rows"] == 2_000
    assert first["mean"] == pytest.approx(np.mean(actual - predicted), abs=1e-6)
    quantiles = list(first["quantiles"].values())
    assert list(first["quantiles"]) == ["p05", "p25", "p50", "p75", "p95"]
    assert quantiles == sorted(quantiles)


def test_residuals_are_actual_minus_predicted_with_only_those_two_numbers():
    actual = np.array([3.0, 1.0, 2.5])
    predicted = np.array([2.0, 1.5, 2.5])

    result = curves.residuals(actual, predicted, seed=1)

    assert result["sample"] == [
        {"predicted": 2.0, "residual": 1.0},
        {"predicted": 1.5, "residual": -0.5},
        {"predicted": 2.5, "residual": 0.0},
    ]
    assert result["sampled"] is False and result["definition"] == "actual - predicted"


def test_residuals_leave_out_rows_without_a_finite_prediction():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, np.nan, np.inf, 3.0])

    result = curves.residuals(actual, predicted, seed=1)

    assert result["rows"] == 2 and result["mean"] == 0.5
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_residuals_of_no_rows_are_an_empty_summary():
    result = curves.residuals(np.array([]), np.array([]), seed=1)

    assert result["rows"] == 0 and result["sample"] == []
    assert result["mean"] is None and result["quantiles"] == {}


def test_residuals_of_a_regressor_are_seeded_by_its_version():
    actual, predicted = regression_rows(500)
    out = evidence.Outputs(predicted, None, None)

    result = evidence.residuals_of(version_of("regression", seed=9), actual, out)

    assert result == curves.residuals(actual, predicted, seed=9)
