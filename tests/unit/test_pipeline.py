"""Pipelines, target checks, the seeded split and the choice of algorithm."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from services.training.pipeline import (
    SELECTION_ORDER,
    Selection,
    check_target,
    choose_algorithm,
    split_indices,
)
from shared.errors import InvalidInput
from shared.pipelines import ALGORITHMS, build_pipeline

SEED = 42
NUMERIC = ["studytime", "absences", "G1"]
CATEGORICAL = ["school", "internet"]
CHEM97_FEATURES = ["gender", "age", "gcsescore"]
CHEM97_PATHS = (
    Path(__file__).resolve().parents[2] / "data" / "chem97.csv",
    Path("/work/shared/datasets/chem97.csv"),
)


def students(n_rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Generated rows shaped like an LMS upload, with some values missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "student_id": [f"S{i:04d}" for i in range(n_rows)],
            "studytime": rng.integers(1, 5, n_rows).astype(float),
            "absences": rng.poisson(4, n_rows).astype(float),
            "G1": rng.normal(12, 3, n_rows).round(),
            "school": pd.Series(rng.choice(["GP", "MS"], n_rows), dtype=object),
            "internet": pd.Series(rng.choice(["yes", "no"], n_rows), dtype=object),
        }
    )
    frame["G3"] = frame["G1"] + frame["studytime"] - 0.2 * frame["absences"]
    frame["passed"] = np.where(frame["G3"] >= 12, "pass", "fail").astype(object)
    frame.loc[::9, "absences"] = np.nan
    frame.loc[::11, "internet"] = None
    frame.loc[::13, "school"] = np.nan
    return frame


@pytest.fixture(scope="module")
def chem97() -> pd.DataFrame:
    path = next(path for path in CHEM97_PATHS if path.exists())
    return pd.read_csv(path)


def choose(
    frame: pd.DataFrame,
    y: pd.Series,
    task: str,
    *,
    folds: int = 3,
    budget_s: float = 60.0,
    max_rows: int = 1_000,
    numeric: list[str] = NUMERIC,
    categorical: list[str] = CATEGORICAL,
) -> Selection:
    """choose_algorithm with the test seed and roomy defaults."""
    return choose_algorithm(
        frame, y, task, numeric, categorical, SEED, budget_s, max_rows, folds
    )


# --- build_pipeline ---------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("task", "target"), [("classification", "passed"), ("regression", "G3")]
)
def test_build_pipeline_fits_and_predicts_with_missing_values(
    task: str, target: str, algorithm: str
) -> None:
    frame = students()

    pipeline = build_pipeline(task, algorithm, NUMERIC, CATEGORICAL, SEED)
    pipeline.fit(frame, frame[target])

    assert len(pipeline.predict(frame)) == len(frame)


def test_build_pipeline_rejects_unknown_algorithm() -> None:
    with pytest.raises(InvalidInput, match=r"'linear', .* \(received 'svm'\)"):
        build_pipeline("classification", "svm", NUMERIC, CATEGORICAL, SEED)


def test_build_pipeline_rejects_auto_before_choice() -> None:
    with pytest.raises(InvalidInput, match="resolved first by choose_algorithm"):
        build_pipeline("regression", "auto", NUMERIC, CATEGORICAL, SEED)


def test_build_pipeline_rejects_unknown_task() -> None:
    with pytest.raises(InvalidInput, match=r"task must be .* \(received 'ranking'\)"):
        build_pipeline("ranking", "linear", NUMERIC, CATEGORICAL, SEED)


def test_build_pipeline_rejects_no_feature_columns() -> None:
    with pytest.raises(InvalidInput, match="at least one numeric or categorical"):
        build_pipeline("regression", "linear", [], [], SEED)


def test_build_pipeline_rejects_column_listed_twice() -> None:
    with pytest.raises(InvalidInput, match=r"not both \(received both for \['G1'\]"):
        build_pipeline("regression", "linear", ["G1"], ["G1"], SEED)


@pytest.mark.parametrize(("numeric", "categorical"), [(NUMERIC, []), ([], CATEGORICAL)])
def test_build_pipeline_works_with_one_kind_of_column(
    numeric: list[str], categorical: list[str]
) -> None:
    frame = students()

    pipeline = build_pipeline("classification", "linear", numeric, categorical, SEED)
    pipeline.fit(frame, frame["passed"])

    assert set(pipeline.predict(frame)) <= {"pass", "fail"}


def test_c10_column_order_and_extra_columns_do_not_change_predictions() -> None:
    frame = students()
    pipeline = build_pipeline("regression", "linear", NUMERIC, CATEGORICAL, SEED)
    pipeline.fit(frame, frame["G3"])
    shuffled = frame[["internet", "G1", "absences", "school", "studytime"]].copy()
    shuffled["email"] = "someone@example.org"

    predictions = pipeline.predict(shuffled)

    np.testing.assert_array_equal(predictions, pipeline.predict(frame))


def test_unseen_category_at_predict_time_does_not_fail() -> None:
    frame = students()
    pipeline = build_pipeline(
        "classification", "hist_gradient_boosting", NUMERIC, CATEGORICAL, SEED
    )
    pipeline.fit(frame, frame["passed"])
    unseen = frame.head(3).assign(school="XX", internet=["maybe", None, np.nan])

    proba = pipeline.predict_proba(unseen)

    assert proba.shape == (3, 2)


def test_categorical_columns_of_pandas_str_dtype_are_accepted() -> None:
    frame = students().astype({"school": "str", "internet": "str"})

    pipeline = build_pipeline("regression", "linear", [], CATEGORICAL, SEED)
    pipeline.fit(frame, frame["G3"])

    assert np.isfinite(pipeline.predict(frame)).all()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pipeline_holds_only_scikit_learn_objects(algorithm: str) -> None:
    frame = students()
    pipeline = build_pipeline("classification", algorithm, NUMERIC, CATEGORICAL, SEED)
    pipeline.fit(frame, frame["passed"])

    parts = [pipeline, *pipeline.get_params(deep=True).values()]
    modules = {
        type(part).__module__.split(".")[0]
        for part in parts
        if hasattr(part, "get_params")
    }
    restored = pickle.loads(pickle.dumps(pipeline))

    assert modules == {"sklearn"}
    np.testing.assert_array_equal(restored.predict(frame), pipeline.predict(frame))


def test_same_seed_gives_same_random_forest() -> None:
    frame = students()

    first, second = (
        build_pipeline("regression", "random_forest", NUMERIC, CATEGORICAL, SEED)
        .fit(frame, frame["G3"])
        .predict(frame)
        for _ in range(2)
    )

    np.testing.assert_array_equal(first, second)


def test_class_weight_reaches_the_classifier() -> None:
    pipeline = build_pipeline(
        "classification", "linear", NUMERIC, [], SEED, class_weight="balanced"
    )

    assert pipeline.named_steps["model"].class_weight == "balanced"


def test_class_weight_rejected_for_regression() -> None:
    with pytest.raises(InvalidInput, match=r"classification only.*'balanced'"):
        build_pipeline("regression", "linear", NUMERIC, [], SEED, "balanced")


def test_unknown_class_weight_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"None or 'balanced' \(received 'heavy'\)"):
        build_pipeline("classification", "linear", NUMERIC, [], SEED, "heavy")


# --- check_target -----------------------------------------------------------


def test_c12_single_class_target_rejected() -> None:
    passed = pd.Series([1.0, 1.0, 1.0, 1.0, 1.0], name="passed")

    with pytest.raises(
        InvalidInput,
        match=(
            r"^target column 'passed' has only one class \(1\); "
            r"classification needs at least two$"
        ),
    ):
        check_target(passed, "classification", "passed")


def test_single_string_class_is_quoted() -> None:
    with pytest.raises(InvalidInput, match=r"only one class \('pass'\)"):
        check_target(pd.Series(["pass", "pass", None]), "classification", "outcome")


def test_categorical_regression_target_rejected_with_examples() -> None:
    grade = pd.Series(["A", "B", "A", "C"], dtype=object)

    with pytest.raises(
        InvalidInput,
        match=(
            r"target column 'grade' is categorical; regression needs a numeric "
            r"target \(received values such as 'A', 'B'\)"
        ),
    ):
        check_target(grade, "regression", "grade")


def test_target_with_too_many_classes_suggests_regression() -> None:
    score = pd.Series(np.arange(60) / 3)

    with pytest.raises(InvalidInput, match=r"has 60 classes.*use regression"):
        check_target(score, "classification", "score")


def test_target_with_fewer_than_two_values_rejected() -> None:
    grade = pd.Series([14.0, np.nan, np.nan])

    with pytest.raises(InvalidInput, match=r"has 1 row with a value \(2 missing\)"):
        check_target(grade, "regression", "G3")


def test_usable_targets_pass_the_check() -> None:
    frame = students()

    check_target(frame["passed"], "classification", "passed")
    check_target(frame["G3"], "regression", "G3")


# --- split_indices ----------------------------------------------------------


def test_split_indices_is_reproducible_and_seed_dependent() -> None:
    y = students()["passed"].to_numpy()

    first = split_indices(y, "classification", 0.2, SEED, 10)
    again = split_indices(y, "classification", 0.2, SEED, 10)
    other = split_indices(y, "classification", 0.2, SEED + 1, 10)

    for part, same in zip(first, again, strict=True):
        np.testing.assert_array_equal(part, same)
    assert not np.array_equal(first[1], other[1])


def test_split_indices_covers_every_row_once_and_stratifies() -> None:
    y = np.array(["fail"] * 20 + ["pass"] * 80, dtype=object)

    train, test = split_indices(y, "classification", 0.2, SEED, 10)

    assert sorted([*train, *test]) == list(range(100))
    assert (y[test] == "fail").sum() == 4


def test_split_indices_falls_back_to_plain_split_for_a_one_row_class() -> None:
    y = np.array(["pass"] * 11 + ["fail"], dtype=object)

    train, test = split_indices(y, "classification", 0.2, SEED, 10)

    assert len(train) + len(test) == 12


def test_split_indices_rejects_too_few_rows() -> None:
    with pytest.raises(
        InvalidInput,
        match=(
            r"^dataset has 4 rows; training needs at least 10 "
            r"\(8 to train, 2 to test\)$"
        ),
    ):
        split_indices(np.arange(4.0), "regression", 0.2, SEED, 10)


def test_split_indices_rejects_test_fraction_out_of_range() -> None:
    with pytest.raises(InvalidInput, match=r"test_fraction .* \(received 0.9\)"):
        split_indices(np.arange(40.0), "regression", 0.9, SEED, 10)


# --- choose_algorithm -------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "target", "scoring"),
    [
        ("classification", "passed", "roc_auc"),
        ("classification", "band", "f1_macro"),
        ("regression", "G3", "r2"),
    ],
)
def test_choose_algorithm_scores_every_algorithm_and_picks_the_best(
    task: str, target: str, scoring: str
) -> None:
    frame = students(n_rows=150)
    frame["band"] = pd.cut(frame["G3"], 3, labels=["low", "mid", "high"]).astype(str)

    selection = choose(frame, frame[target], task)

    assert selection.scoring == scoring
    assert list(selection.scores) == list(SELECTION_ORDER)
    assert selection.algorithm == max(
        selection.scores, key=selection.scores.__getitem__
    )
    assert selection.skipped == []
    assert selection.folds == 3
    assert all(type(score) is float for score in selection.scores.values())


def test_choose_algorithm_tiny_budget_tries_only_the_first() -> None:
    frame = students()

    selection = choose(frame, frame["G3"], "regression", budget_s=0.0)

    assert list(selection.scores) == ["linear"]
    assert selection.skipped == ["hist_gradient_boosting", "random_forest"]
    assert selection.algorithm == "linear"


@pytest.mark.filterwarnings("error::UserWarning")
def test_choose_algorithm_samples_at_most_max_rows_keeping_rare_classes() -> None:
    frame = students(n_rows=400)
    y = pd.Series(["pass"] * 394 + ["fail"] * 6)

    selection = choose(frame, y, "classification", folds=5, budget_s=0.0, max_rows=100)

    # A sample with fewer than 5 'fail' rows would warn in StratifiedKFold.
    assert selection.folds == 5
    assert selection.notes == ["cross-validated on a seeded sample of 100 of 400 rows"]
    assert np.isfinite(selection.scores["linear"])


def test_c13_folds_lowered_to_smallest_class() -> None:
    frame = pd.DataFrame(
        {
            "student_id": pd.Series([f"S{i:02d}" for i in range(1, 11)], dtype=object),
            "studytime": [2.0, 3.0, 1.0, 2.0, 4.0, 1.0, 2.0, 3.0, 2.0, 3.0],
            "absences": [4.0, 0.0, 10.0, 2.0, 1.0, 14.0, 3.0, 5.0, 1.0, 2.0],
            "G1": [12.0, 15.0, 8.0, 13.0, 17.0, 6.0, 11.0, 14.0, 12.0, 16.0],
        }
    )
    outcome = pd.Series(["pass", "pass", "fail", "pass", "pass", "fail"] + ["pass"] * 4)

    selection = choose(frame, outcome, "classification", folds=5, categorical=[])

    assert selection.folds == 2
    assert selection.notes == [
        "lowered cross-validation folds from 5 to 2: smallest class 'fail' has 2 rows"
    ]
    assert set(selection.scores) == set(SELECTION_ORDER)


def test_c13_class_with_one_row_rejected() -> None:
    frame = students(n_rows=12)
    y = pd.Series(["pass"] * 11 + ["fail"])

    with pytest.raises(
        InvalidInput,
        match=(
            r"^smallest class 'fail' has 1 row; "
            r"cross-validation needs at least 2 per class$"
        ),
    ):
        choose(frame, y, "classification", folds=5)


# --- chem97: known baseline quality ------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chem97_regression_of_score_reaches_known_r2(
    chem97: pd.DataFrame, algorithm: str
) -> None:
    y = chem97["score"].astype(float)
    train, test = split_indices(y.to_numpy(), "regression", 0.2, SEED, 10)
    pipeline = build_pipeline(
        "regression", algorithm, ["age", "gcsescore"], ["gender"], SEED
    )

    started = time.perf_counter()
    pipeline.fit(chem97.iloc[train], y.iloc[train])
    fit_s = time.perf_counter() - started
    r2 = r2_score(y.iloc[test], pipeline.predict(chem97.iloc[test]))

    print(f"chem97 regression {algorithm}: R² {r2:.3f}, fit {fit_s:.2f} s")
    assert r2 >= 0.40


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chem97_at_risk_classification_reaches_known_roc_auc(
    chem97: pd.DataFrame, algorithm: str
) -> None:
    at_risk = (chem97["score"] <= 4).astype(int)
    train, test = split_indices(at_risk.to_numpy(), "classification", 0.2, SEED, 10)
    pipeline = build_pipeline(
        "classification", algorithm, ["age", "gcsescore"], ["gender"], SEED
    )

    started = time.perf_counter()
    pipeline.fit(chem97.iloc[train], at_risk.iloc[train])
    fit_s = time.perf_counter() - started
    proba = pipeline.predict_proba(chem97.iloc[test])[:, 1]
    auc = roc_auc_score(at_risk.iloc[test], proba)

    print(f"chem97 at-risk {algorithm}: ROC AUC {auc:.3f}, fit {fit_s:.2f} s")
    assert auc >= 0.80
