"""Hyper-parameter search within a budget of trials and seconds (Optuna).

Each trial cross-validates one setting of the chosen algorithm on the
training rows, with folds that keep every group (a school, say) on one
side. The sampler is seeded, so the same request on the same data tries
the same settings in the same order; the search is reproducible as long as
the trial count, not the time limit, ends it, and the summary says which.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import cross_val_score

from services.training.splits import splitter
from shared.pipelines import build_pipeline

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

Space = dict[str, Any]


@dataclass
class Tuning:
    params: dict[str, Any]
    score: float | None
    scoring: str
    trials: int
    seconds: float
    stopped_by: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "best_params": self.params,
            "best_score": self.score,
            "scoring": self.scoring,
            "trials": self.trials,
            "seconds": round(self.seconds, 2),
            "stopped_by": self.stopped_by,
        }


def suggest(
    trial: optuna.Trial | optuna.trial.FixedTrial, task: str, algorithm: str
) -> Space:
    """One point of the algorithm's search space, as pipeline parameters."""
    if algorithm == "linear":
        if task == "classification":
            return {"model__C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
        return {"model__alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    if algorithm == "random_forest":
        return {
            "model__n_estimators": trial.suggest_int("n_estimators", 50, 300, step=50),
            "model__max_depth": trial.suggest_int("max_depth", 3, 20),
            "model__min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 30),
            "model__max_features": trial.suggest_categorical(
                "max_features", ["sqrt", 0.5, 1.0]
            ),
        }
    return {
        "model__learning_rate": trial.suggest_float(
            "learning_rate", 0.01, 0.3, log=True
        ),
        "model__max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64),
        "model__min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100),
        "model__l2_regularization": trial.suggest_float(
            "l2_regularization", 1e-4, 10.0, log=True
        ),
    }


def tune(
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series | None,
    *,
    task: str,
    algorithm: str,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    trials: int,
    seconds: float,
    folds: int,
    scoring: str,
    class_weight: str | None,
) -> Tuning:
    cv = splitter(task, folds, seed, groups is not None)
    started = time.monotonic()

    def objective(trial: optuna.Trial) -> float:
        pipeline = build_pipeline(
            task, algorithm, numeric, categorical, seed, class_weight
        )
        pipeline.set_params(**suggest(trial, task, algorithm))
        scores = cross_val_score(
            pipeline, X, y, groups=groups, scoring=scoring, cv=cv, error_score=np.nan
        )
        mean = float(np.mean(scores))
        return mean if np.isfinite(mean) else float("-inf")

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(objective, n_trials=trials, timeout=seconds)
    elapsed = time.monotonic() - started
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial
    params = suggest(optuna.trial.FixedTrial(best.params), task, algorithm)
    value = best.value
    return Tuning(
        params=params,
        score=None
        if value is None or not np.isfinite(value)
        else round(float(value), 6),
        scoring=scoring,
        trials=len(done),
        seconds=elapsed,
        stopped_by="trials" if len(done) >= trials else "seconds",
        history=[{"params": t.params, "score": t.value} for t in done],
    )
