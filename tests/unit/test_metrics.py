"""Evaluation metrics, baselines and the comparison used for promotion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, roc_auc_score

from services.evaluation.metrics import (
    baseline_metrics,
    better,
    classification_metrics,
    primary_metric,
    regression_metrics,
)
from shared.errors import InvalidInput

BINARY = ["fail", "pass"]
MULTICLASS = ["a", "b", "c"]
CLASSIFICATION_KEYS = {
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
}
BINARY_KEYS = CLASSIFICATION_KEYS | {"precision", "recall", "f1"}


def binary_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eight labelled rows, their predictions and probabilities of BINARY."""
    y_true = np.array(["pass", "pass", "fail", "pass", "fail", "pass", "fail", "pass"])
    p_pass = np.array([0.9, 0.8, 0.3, 0.4, 0.6, 0.7, 0.1, 0.55])
    y_pred = np.where(p_pass >= 0.5, "pass", "fail")
    return y_true, y_pred, np.column_stack([1 - p_pass, p_pass])


def assert_plain(metrics: dict[str, float | None]) -> None:
    for name, value in metrics.items():
        assert value is None or type(value) is float, name
        assert value is None or math.isfinite(value), name


# --- classification_metrics ---------------------------------------------------


def test_binary_metrics_match_scikit_learn_with_classes_1_as_positive() -> None:
    y_true, y_pred, proba = binary_rows()

    metrics = classification_metrics(y_true, y_pred, proba, BINARY)

    assert set(metrics) == BINARY_KEYS
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(4 / 5)
    assert metrics["precision"] == pytest.approx(4 / 5)
    assert metrics["f1_macro"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro")
    )
    assert metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y_true == "pass", proba[:, 1])
    )
    assert metrics["log_loss"] == pytest.approx(log_loss(y_true, proba, labels=BINARY))
    assert_plain(metrics)


def test_metrics_are_plain_floats_ready_for_json() -> None:
    y_true, y_pred, proba = binary_rows()

    metrics = classification_metrics(list(y_true), list(y_pred), proba, BINARY)

    assert_plain(metrics)
    assert json.loads(json.dumps(metrics)) == metrics


def test_multiclass_metrics_use_one_vs_rest_roc_auc() -> None:
    y_true = np.array(["a", "b", "c", "a", "b", "c"])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.2, 0.6, 0.2],
            [0.1, 0.3, 0.6],
            [0.4, 0.4, 0.2],
            [0.5, 0.3, 0.2],
            [0.2, 0.2, 0.6],
        ]
    )
    y_pred = np.array(MULTICLASS)[proba.argmax(axis=1)]

    metrics = classification_metrics(y_true, y_pred, proba, MULTICLASS)

    assert set(metrics) == CLASSIFICATION_KEYS
    expected = roc_auc_score(y_true, proba, multi_class="ovr", labels=MULTICLASS)
    assert metrics["roc_auc"] == pytest.approx(expected)
    assert_plain(metrics)


def test_multiclass_roc_auc_is_none_when_a_class_is_absent_from_y_true() -> None:
    y_true = np.array(["a", "b", "a", "b"])
    proba = np.full((4, 3), 1 / 3)

    metrics = classification_metrics(y_true, y_true, proba, MULTICLASS)

    assert metrics["roc_auc"] is None
    assert metrics["accuracy"] == 1.0


def test_c16_model_without_probabilities_gets_none_for_probability_metrics() -> None:
    y_true, y_pred, _ = binary_rows()

    metrics = classification_metrics(y_true, y_pred, None, BINARY)

    assert metrics["roc_auc"] is None
    assert metrics["log_loss"] is None
    assert metrics["balanced_accuracy"] is not None


def test_c16_binary_decision_scores_give_roc_auc_but_no_log_loss() -> None:
    y_true, y_pred, proba = binary_rows()
    decision = np.log(proba[:, 1] / proba[:, 0])

    metrics = classification_metrics(y_true, y_pred, decision, BINARY)

    assert metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y_true == "pass", decision)
    )
    assert metrics["log_loss"] is None


def test_single_sample_gives_none_for_undefined_metrics_without_raising() -> None:
    metrics = classification_metrics(["pass"], ["fail"], np.array([[0.6, 0.4]]), BINARY)

    assert metrics["accuracy"] == 0.0
    for name in ("balanced_accuracy", "f1_macro", "precision", "recall", "roc_auc"):
        assert metrics[name] is None, name
    assert_plain(metrics)


def test_single_class_in_y_true_gives_none_for_class_averages() -> None:
    y_true = np.array(["pass"] * 5)
    proba = np.tile([0.2, 0.8], (5, 1))

    metrics = classification_metrics(y_true, y_true, proba, BINARY)

    assert metrics["accuracy"] == 1.0
    assert metrics["balanced_accuracy"] is None
    assert metrics["roc_auc"] is None
    assert_plain(metrics)


def test_no_rows_gives_none_everywhere() -> None:
    metrics = classification_metrics([], [], None, BINARY)

    assert set(metrics) == BINARY_KEYS
    assert all(value is None for value in metrics.values())


def test_probabilities_of_the_wrong_shape_rejected() -> None:
    y_true, y_pred, proba = binary_rows()

    with pytest.raises(InvalidInput, match=r"shape \(8, 3\).*received shape \(8, 2\)"):
        classification_metrics(y_true, y_pred, proba, MULTICLASS)


# --- regression_metrics -------------------------------------------------------


def test_regression_metrics_give_mae_rmse_and_r2() -> None:
    metrics = regression_metrics([10.0, 12.0, 14.0, 16.0], [11.0, 12.0, 13.0, 18.0])

    assert metrics == {
        "mae": pytest.approx(1.0),
        "rmse": pytest.approx(math.sqrt(6 / 4)),
        "r2": pytest.approx(1 - 6 / 20),
    }
    assert_plain(metrics)


@pytest.mark.parametrize(
    ("y_true", "y_pred"), [([12.0], [11.0]), ([12.0, 12.0, 12.0], [11.0, 12.0, 13.0])]
)
def test_r2_is_none_for_one_row_or_a_constant_target(
    y_true: list[float], y_pred: list[float]
) -> None:
    metrics = regression_metrics(y_true, y_pred)

    assert metrics["r2"] is None
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(np.subtract(y_true, y_pred))))


def test_regression_metrics_of_no_rows_are_none() -> None:
    assert regression_metrics([], []) == {"mae": None, "rmse": None, "r2": None}


# --- primary_metric, baseline_metrics, better ---------------------------------


@pytest.mark.parametrize(
    ("task", "n_classes", "has_proba", "expected"),
    [
        ("regression", 0, False, "r2"),
        ("classification", 2, True, "roc_auc"),
        ("classification", 2, False, "balanced_accuracy"),
        ("classification", 3, True, "balanced_accuracy"),
    ],
)
def test_primary_metric_per_task(
    task: str, n_classes: int, has_proba: bool, expected: str
) -> None:
    assert primary_metric(task, n_classes, has_proba) == expected


def test_primary_metric_rejects_unknown_task() -> None:
    with pytest.raises(InvalidInput, match=r"\(received 'ranking'\)"):
        primary_metric("ranking", 2, True)


def test_classification_baseline_predicts_the_training_majority() -> None:
    y_train = ["pass"] * 7 + ["fail"] * 3
    y_test = ["pass"] * 3 + ["fail"]

    metrics = baseline_metrics("classification", y_train, y_test, BINARY)

    assert metrics["accuracy"] == 0.75
    assert metrics["balanced_accuracy"] == 0.5
    assert metrics["roc_auc"] == 0.5
    assert metrics["log_loss"] == pytest.approx(
        -(3 * math.log(0.7) + math.log(0.3)) / 4
    )


def test_regression_baseline_predicts_the_training_mean() -> None:
    metrics = baseline_metrics("regression", [10.0, 20.0], [12.0, 18.0], [])

    assert metrics["mae"] == 3.0
    assert metrics["r2"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "expected"),
    [
        ("roc_auc", 0.81, 0.80, True),
        ("roc_auc", 0.80, 0.80, False),
        ("r2", 0.30, 0.45, False),
        ("rmse", 1.9, 2.0, True),
        ("mae", 2.1, 2.0, False),
        ("log_loss", 0.40, 0.50, True),
        ("balanced_accuracy", None, 0.5, False),
        ("balanced_accuracy", 0.6, None, True),
        ("balanced_accuracy", None, None, False),
    ],
)
def test_better_knows_which_direction_wins(
    metric: str, candidate: float | None, champion: float | None, expected: bool
) -> None:
    assert better(metric, candidate, champion) is expected


def test_better_rejects_unknown_metric() -> None:
    with pytest.raises(InvalidInput, match=r"metric must be one of .*'ppv'"):
        better("ppv", 0.9, 0.8)


def test_c15_majority_candidate_does_not_beat_baseline() -> None:
    # 100 rows, 92 completed and 8 dropped_out, as in the case.
    classes = ["completed", "dropped_out"]
    y_train = np.array(["completed"] * 74 + ["dropped_out"] * 6)
    y_test = np.array(["completed"] * 18 + ["dropped_out"] * 2)
    all_completed = np.full(20, "completed")
    proba = np.tile([0.93, 0.07], (20, 1))

    candidate = classification_metrics(y_test, all_completed, proba, classes)
    baseline = baseline_metrics("classification", y_train, y_test, classes)

    assert candidate["accuracy"] == 0.9  # looks fine ...
    assert candidate["recall"] == 0.0  # ... but no dropout is ever found
    for metric in ("balanced_accuracy", "roc_auc"):
        assert not better(metric, candidate[metric], baseline[metric]), metric
    assert primary_metric("classification", 2, has_proba=True) == "roc_auc"


def test_c15_champion_that_finds_dropouts_stays_ahead_of_majority_candidate() -> None:
    classes = ["completed", "dropped_out"]
    y_test = np.array(["completed"] * 92 + ["dropped_out"] * 8)
    champion_pred = y_test.copy()
    champion_pred[:6] = "dropped_out"  # 6 false alarms
    champion_pred[92:96] = "completed"  # half the dropouts missed
    all_completed = np.full(100, "completed")

    champion = classification_metrics(y_test, champion_pred, None, classes)
    candidate = classification_metrics(y_test, all_completed, None, classes)
    metric = primary_metric("classification", 2, has_proba=False)

    assert champion["accuracy"] == 0.90
    assert champion["recall"] == 0.5
    assert candidate["accuracy"] == 0.92
    assert not better(metric, candidate[metric], champion[metric])
