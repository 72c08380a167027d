"""Moodle's evaluation procedure on samples in memory: scores, status, notes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.evaluation import moodle


def samples(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    generator = np.random.default_rng(seed)
    X = pd.DataFrame(generator.uniform(-1, 1, (n, 2)), columns=["a", "b"])
    y = (X["a"] + X["b"] > 0).astype(np.int64).to_numpy()
    return X, y


def test_a_score_measured_on_few_samples_is_reported_with_a_note():
    X, _ = samples(4)
    y = np.array([0, 1, 0, 1])  # one scored sample an iteration

    scores = moodle.cross_check(X, y, [0, 1], 5, "random_forest", seed=1)
    result = moodle.judge(scores, min_score=0.0, max_deviation=1.0)

    assert result["status"] == moodle.OK and result["iterations"] >= 1
    assert any("measured on 1 sample(s) only" in line for line in result["info"])


def test_enough_samples_score_without_a_note():
    X, y = samples(200)

    scores = moodle.cross_check(X, y, [0, 1], 3, "random_forest", seed=1)
    result = moodle.judge(scores, min_score=0.7, max_deviation=0.2)

    assert result["status"] == moodle.OK, result["info"]
    assert result["info"] == [] and result["iterations"] == 3
    assert result["score"] > 0.8
