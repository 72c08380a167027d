"""Promotion gates, per-group tables, intervals and tuning: the evaluation's pure parts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.evaluation import fairness, uncertainty
from services.evaluation.decision import Comparison, decide
from services.evaluation.evidence import ImportanceBudget, importance
from services.evaluation.metrics import baseline_metrics, classification_metrics
from services.training.tuning import tune
from shared.jobs import Gates
from shared.registry import ArtifactRef, FeatureSpec, VersionRecord


def test_c15_all_majority_candidate_is_never_promoted():
    y_train = np.array(["completed"] * 92 + ["dropped_out"] * 8)
    y_test = np.array(["completed"] * 92 + ["dropped_out"] * 8)
    candidate = classification_metrics(
        y_test, np.array(["completed"] * 100), None, ["completed", "dropped_out"]
    )
    baseline = baseline_metrics(
        "classification", y_train, y_test, ["completed", "dropped_out"]
    )

    decision = decide(
        "balanced_accuracy", candidate, baseline, Comparison(version=None), Gates(), {}
    )

    assert candidate["accuracy"] == pytest.approx(0.92)
    assert decision.promoted is False
    assert "does not beat the trivial baseline" in decision.reasons[0]


def test_candidate_better_overall_but_past_the_group_gap_is_rejected():
    champion = Comparison(
        version=1, metrics={"roc_auc": 0.80}, gaps={"gender": {"recall": 0.05}}
    )
    gates = Gates(max_group_gap=0.10, gap_metric="recall")

    decision = decide(
        "roc_auc",
        {"roc_auc": 0.85},
        {"roc_auc": 0.5},
        champion,
        gates,
        {"gender": {"recall": 0.18}},
    )

    assert decision.promoted is False
    assert decision.reasons[0] == (
        "recall gap between groups of gender is 0.1800, past the limit of 0.1 "
        "(champion v1: 0.0500)"
    )
    assert any("beats champion v1" in reason for reason in decision.reasons)


def test_a_gap_the_champion_already_had_may_narrow():
    champion = Comparison(version=1, metrics={"r2": 0.40}, gaps={"sex": {"mae": 0.30}})

    decision = decide(
        "r2",
        {"r2": 0.45},
        {"r2": 0.0},
        champion,
        Gates(max_group_gap=0.1, gap_metric="mae"),
        {"sex": {"mae": 0.25}},
    )

    assert decision.promoted is True


def test_minimum_improvement_and_significance_gates():
    champion = Comparison(
        version=3, metrics={"r2": 0.40}, gain_interval={"low": -0.01, "high": 0.03}
    )

    small = decide(
        "r2", {"r2": 0.41}, {"r2": 0.0}, champion, Gates(min_improvement=0.02), {}
    )
    noisy = decide(
        "r2", {"r2": 0.45}, {"r2": 0.0}, champion, Gates(significant=True), {}
    )

    assert not small.promoted and "needs a gain above 0.02" in small.reasons[0]
    assert not noisy.promoted and "within noise" in noisy.reasons[0]


def test_lower_is_better_metrics_are_compared_the_right_way():
    champion = Comparison(version=1, metrics={"mae": 0.50})

    decision = decide("mae", {"mae": 0.40}, {"mae": 0.9}, champion, Gates(), {})

    assert decision.promoted is True
    assert "by 0.1000" in decision.reasons[0]


def test_group_table_scores_values_and_pairs_and_flags_small_groups():
    groups = pd.DataFrame(
        {"sex": ["F"] * 50 + ["M"] * 45 + ["X"] * 5, "school": (["a", "b"] * 50)}
    )
    y_true = np.array([1, 0] * 50)
    y_pred = np.array([1] * 50 + [0] * 50)

    table = fairness.group_table(groups, y_true, y_pred, None, "classification", 1, 20)

    assert table["sex"]["X"] == {"n": 5, "too_small": True}
    assert table["sex"]["F"]["recall"] == 1.0
    assert table["sex"]["M"]["recall"] == 0.0
    assert set(table["sex+school"]) == {"F+a", "F+b", "M+a", "M+b", "X+a", "X+b"}
    assert fairness.gaps(table, ("recall",))["sex"]["recall"] == 1.0


def test_bootstrap_interval_is_reproducible_and_brackets_the_score():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500)
    guess = np.where(rng.random(500) < 0.8, truth, 1 - truth)

    def accuracy(rows):
        return float(np.mean(truth[rows] == guess[rows]))

    first = uncertainty.bootstrap_interval(accuracy, 500, 200, seed=42)
    second = uncertainty.bootstrap_interval(accuracy, 500, 200, seed=42)

    assert first == second
    assert first["low"] < accuracy(np.arange(500)) < first["high"]


def test_capacity_counts_the_top_share():
    actual = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    proba = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05])

    result = uncertainty.at_capacity(actual, proba, 0.2)

    assert result == {"share": 0.2, "flagged": 2, "precision": 1.0, "recall": 0.666667}


def test_tuning_is_reproducible_and_keeps_groups_apart():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"hours": rng.normal(size=300), "absences": rng.normal(size=300)})
    y = pd.Series((X["hours"] + rng.normal(scale=0.5, size=300) > 0).astype(int))
    groups = pd.Series(np.repeat(np.arange(30), 10))
    arguments = dict(
        task="classification",
        algorithm="linear",
        numeric=["hours", "absences"],
        categorical=[],
        seed=42,
        trials=6,
        seconds=60,
        folds=3,
        scoring="roc_auc",
        class_weight=None,
    )

    first = tune(X, y, groups, **arguments)
    second = tune(X, y, groups, **arguments)

    assert first.params == second.params
    assert first.score == second.score
    assert first.trials == 6 and first.stopped_by == "trials"


# --- permutation importance within a budget -------------------------------------------


def importance_case(rows: int = 400) -> tuple[Any, VersionRecord, pd.DataFrame, Any]:
    """A fitted classifier on 3 informative, 20 noise and 10 constant features."""
    generator = np.random.default_rng(3)
    informative = generator.normal(size=(rows, 3))
    noise = generator.normal(size=(rows, 20))
    X = pd.DataFrame(
        np.hstack([informative, noise, np.ones((rows, 10))]),
        columns=[f"signal{i}" for i in range(3)]
        + [f"noise{i}" for i in range(20)]
        + [f"constant{i}" for i in range(10)],
    )
    y = (informative @ [2.0, -1.5, 1.0] + generator.normal(size=rows) > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    version = VersionRecord(
        tenant="t",
        model="m",
        job_id="j",
        dataset_id="d",
        task="classification",
        target="y",
        features=[FeatureSpec(name=name, type="numeric") for name in X.columns],
        algorithm="linear",
        seed=42,
        classes=[0, 1],
        has_proba=True,
        artifact=ArtifactRef(key="k", sha256="0" * 64, bytes=1),
        libraries={},
        fit_seconds=0.0,
        rows={"train": rows, "test": rows},
        test_rows=[],
    )
    return pipeline, version, X, y


def test_importance_measures_the_most_promising_features_within_the_budget():
    pipeline, version, X, y = importance_case()
    budget = ImportanceBudget(max_rows=10_000, max_features=5, seconds=600)

    listing, scope = importance(pipeline, version, X, y, "roc_auc", budget)

    values = {item["feature"]: item["importance"] for item in listing}
    assert [item["feature"] for item in listing[:3]] == [
        "signal0",
        "signal1",
        "signal2",
    ]
    assert sum(value is not None for value in values.values()) == 5 + 10
    assert all(values[f"constant{i}"] == 0.0 for i in range(10))
    assert [item["importance"] for item in listing[-18:]] == [None] * 18
    assert scope is not None
    assert (scope["measured"], scope["constant"], scope["not_measured"]) == (5, 10, 18)
    assert scope["stopped_by"] == "IMPORTANCE_MAX_FEATURES"
    assert not scope["complete"]
    assert "5 of the other 23 features were measured" in scope["note"]


def test_importance_samples_rows_and_keeps_each_features_figure_under_any_budget():
    pipeline, version, X, y = importance_case()

    small, sampled = importance(
        pipeline, version, X, y, "roc_auc", ImportanceBudget(100, 2, 600)
    )
    large, _ = importance(
        pipeline, version, X, y, "roc_auc", ImportanceBudget(100, 50, 600)
    )

    assert sampled is not None and sampled["sampled"] and sampled["rows"] == 100
    assert "a seeded sample of 100 of the 400 held-out rows" in sampled["note"]
    by_feature = {item["feature"]: item for item in large}
    assert all(by_feature[item["feature"]] == item for item in small[:2])


def test_importance_starts_no_feature_after_its_time_budget():
    pipeline, version, X, y = importance_case()

    _, scope = importance(
        pipeline, version, X, y, "roc_auc", ImportanceBudget(10_000, 50, 1e-9)
    )

    assert scope is not None
    assert scope["measured"] <= 1
    assert scope["stopped_by"] == "IMPORTANCE_BUDGET_S"
    assert "IMPORTANCE_BUDGET_S" in scope["note"]


def test_importance_within_budget_is_complete_and_says_so():
    pipeline, version, X, y = importance_case()

    listing, scope = importance(
        pipeline, version, X, y, "roc_auc", ImportanceBudget(10_000, 50, 600)
    )

    assert scope is not None and scope["complete"]
    assert all(item["importance"] is not None for item in listing)
    assert scope["note"].startswith(
        "Permutation importance computed on all 400 held-out rows"
    )
