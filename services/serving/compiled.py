"""A compiled copy of a fitted pipeline's preprocessing, for a few rows at a time.

For one row, ``Pipeline.predict_proba`` spends most of its time building a
DataFrame and walking the ColumnTransformer, not computing. The pipelines the
platform trains (shared/pipelines.py) preprocess in two ways only:

- numeric columns: median imputation (with missing-value indicators), then
  standard scaling of the imputed values and the indicators alike;
- text columns: missing values filled with one category, then one-hot
  encoding (unknown categories give all zeros; rare ones may share a column).

Both are compiled here from the fitted objects into numpy arrays: the numeric
part into fill values, means and scales; each text column into a table with
one row of encoded output per known value, found by asking the fitted encoder
itself, so that rare and unknown categories come out exactly as it encodes
them. The final estimator then runs on the matrix, as it does in the pipeline.

A compiled transform is used only after it has given the same matrix, and the
estimator the same outputs within ``TOLERANCE``, as scikit-learn on probe rows
covering every known category, unknown and missing values, and numbers around
each fill value. Any other pipeline shape, or a difference, leaves the model
on scikit-learn's path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shared.registry import VersionRecord

log = logging.getLogger(__name__)

TOLERANCE = 1e-6
UNSEEN = "\x00unseen category\x00"  # a value no training column can hold
PROBE_ROWS = 64
PROBE_SEED = 20_240_601


@dataclass(frozen=True)
class NumericBlock:
    """Imputed and scaled numeric inputs, then their scaled missing indicators."""

    positions: np.ndarray  # of the inputs in each row
    kept: np.ndarray  # inputs that produce a column (an all-missing one does not)
    fill: np.ndarray  # per kept input
    indicated: np.ndarray  # inputs with an indicator column
    mean: np.ndarray
    scale: np.ndarray

    def encode(self, rows: list[list[Any]]) -> np.ndarray:
        values = np.array(
            [[row[p] for p in self.positions] for row in rows], dtype=float
        ).reshape(len(rows), len(self.positions))
        missing = np.isnan(values)
        imputed = np.where(missing[:, self.kept], self.fill, values[:, self.kept])
        indicators = missing[:, self.indicated].astype(float)
        block = np.hstack([imputed, indicators])
        block -= self.mean
        block /= self.scale
        return block


@dataclass(frozen=True)
class TextColumn:
    """One text input: the encoded output of each known value, and of others."""

    position: int
    rows_of: dict[str, int]  # value -> row of ``table``
    table: np.ndarray  # last two rows: an unseen value, a missing value
    unseen: int
    missing: int

    def encode(self, rows: list[list[Any]]) -> np.ndarray:
        picks = [self._row(row[self.position]) for row in rows]
        return self.table[picks]

    def _row(self, value: Any) -> int:
        if value is None or (isinstance(value, float) and value != value):
            return self.missing
        return self.rows_of.get(value, self.unseen)


@dataclass(frozen=True)
class TextBlock:
    columns: list[TextColumn]

    def encode(self, rows: list[list[Any]]) -> np.ndarray:
        return np.hstack([column.encode(rows) for column in self.columns])


Block = NumericBlock | TextBlock


@dataclass(frozen=True)
class CompiledTransform:
    """The pipeline's preprocessing as array operations on rows in feature order."""

    blocks: list[Block]
    width: int

    def transform(self, rows: list[list[Any]]) -> np.ndarray:
        if not rows:
            return np.empty((0, self.width))
        return np.hstack([block.encode(rows) for block in self.blocks])


def compile_pipeline(record: VersionRecord, pipeline: Any) -> CompiledTransform | None:
    """The checked compiled transform, or None when the pipeline needs scikit-learn."""
    preprocess = _preprocessor(pipeline)
    if preprocess is None:
        return None
    names = [feature.name for feature in record.features]
    try:
        compiled = _compile(preprocess, {name: i for i, name in enumerate(names)})
    except (_NotCompilable, KeyError, AttributeError, ValueError) as reason:
        log.info(
            "serving: %s v%d keeps scikit-learn's transform (%s)",
            record.model,
            record.version,
            reason,
        )
        return None
    if compiled is None:
        return None
    if not agrees(record, pipeline, compiled, probe_rows(record, preprocess)):
        log.warning(
            "serving: %s v%d: the compiled transform differs from scikit-learn's; "
            "scikit-learn's is used",
            record.model,
            record.version,
        )
        return None
    return compiled


class _NotCompilable(Exception):
    pass


def _preprocessor(pipeline: Any) -> ColumnTransformer | None:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    preprocess = pipeline.steps[0][1]
    return preprocess if isinstance(preprocess, ColumnTransformer) else None


def _compile(
    preprocess: ColumnTransformer, position: dict[str, int]
) -> CompiledTransform | None:
    blocks: list[Block] = []
    for name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        if not isinstance(transformer, Pipeline):
            raise _NotCompilable(f"transformer {name!r} is not a pipeline")
        steps = [step for _, step in transformer.steps]
        positions = [position[column] for column in columns]
        if _is_numeric(steps):
            blocks.append(_numeric_block(steps[0], steps[1], positions))
        elif _is_text(steps):
            blocks.append(_text_block(transformer, columns, positions))
        else:
            raise _NotCompilable(f"transformer {name!r} has an unknown shape")
    if not blocks:
        return None
    width = int(preprocess.transform(_empty_frame(preprocess)).shape[1])
    return CompiledTransform(blocks, width)


def _is_numeric(steps: list[Any]) -> bool:
    return (
        len(steps) == 2
        and isinstance(steps[0], SimpleImputer)
        and isinstance(steps[1], StandardScaler)
        and steps[0].strategy in ("median", "mean")
        and not steps[0].keep_empty_features
        and _nan_is_missing(steps[0])
    )


def _is_text(steps: list[Any]) -> bool:
    return (
        len(steps) >= 2
        and all(isinstance(step, SimpleImputer) for step in steps[:-1])
        and all(step.strategy == "constant" for step in steps[:-1])
        and isinstance(steps[-1], OneHotEncoder)
        and steps[-1].drop is None
    )


def _nan_is_missing(imputer: SimpleImputer) -> bool:
    marker = imputer.missing_values
    return isinstance(marker, float) and marker != marker


def _numeric_block(
    imputer: SimpleImputer, scaler: StandardScaler, positions: list[int]
) -> NumericBlock:
    statistics = np.asarray(imputer.statistics_, dtype=float)
    kept = np.flatnonzero(~np.isnan(statistics))
    indicated = (
        np.asarray(imputer.indicator_.features_, dtype=int)
        if imputer.add_indicator and imputer.indicator_ is not None
        else np.empty(0, dtype=int)
    )
    width = len(kept) + len(indicated)
    mean = np.zeros(width) if scaler.mean_ is None else np.asarray(scaler.mean_)
    scale = np.ones(width) if scaler.scale_ is None else np.asarray(scaler.scale_)
    if not scaler.with_mean:
        mean = np.zeros(width)
    if len(mean) != width or len(scale) != width:
        raise _NotCompilable("scaler and imputer widths differ")
    return NumericBlock(
        positions=np.asarray(positions, dtype=int),
        kept=kept,
        fill=statistics[kept],
        indicated=indicated,
        mean=mean,
        scale=scale,
    )


def _text_block(steps: Pipeline, columns: list[str], positions: list[int]) -> TextBlock:
    """Each column's table, from the fitted steps encoding every known value."""
    encoder: OneHotEncoder = steps.steps[-1][1]
    generic = [f"x{index}" for index in range(len(columns))]
    names = encoder.get_feature_names_out(generic)
    text_columns = []
    for index, (column, position) in enumerate(zip(columns, positions, strict=True)):
        known = [str(value) for value in encoder.categories_[index]]
        if any(not isinstance(v, str) for v in encoder.categories_[index]):
            raise _NotCompilable(f"column {column!r} has categories that are not text")
        values: list[Any] = [*known, UNSEEN, None]
        probe = pd.DataFrame(
            {
                other: pd.Series(
                    values if other == column else [known[0]] * len(values),
                    dtype=object,
                )
                for other in columns
            }
        )
        encoded = np.asarray(steps.transform(probe), dtype=float)
        own = [i for i, name in enumerate(names) if name.startswith(f"x{index}_")]
        text_columns.append(
            TextColumn(
                position=position,
                rows_of={value: row for row, value in enumerate(known)},
                table=encoded[:, own],
                unseen=len(known),
                missing=len(known) + 1,
            )
        )
    return TextBlock(text_columns)


def _empty_frame(preprocess: ColumnTransformer) -> pd.DataFrame:
    """One row of missing values in every input column, to learn the output width."""
    columns = [
        c for _, t, cols in preprocess.transformers_ if t != "drop" for c in cols
    ]
    return pd.DataFrame(
        {column: pd.Series([np.nan], dtype=object) for column in columns}
    )


# --- the check ------------------------------------------------------------------


def probe_rows(record: VersionRecord, preprocess: ColumnTransformer) -> list[list[Any]]:
    """Rows in feature order that visit every known category, unseen and missing
    values, and numbers on both sides of each fill value."""
    categories: dict[str, list[str]] = {}
    for _, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, Pipeline) and isinstance(
            transformer.steps[-1][1], OneHotEncoder
        ):
            encoder = transformer.steps[-1][1]
            for index, column in enumerate(columns):
                categories[column] = [str(v) for v in encoder.categories_[index]]
    longest = max((len(values) for values in categories.values()), default=0)
    count = max(PROBE_ROWS, longest + 2)
    rng = np.random.default_rng(PROBE_SEED)
    rows: list[list[Any]] = [[] for _ in range(count)]
    for feature in record.features:
        if feature.type == "numeric":
            centre = _number(record.reference.get(feature.name))
            values: list[Any] = list(centre + rng.normal(0, 1 + abs(centre), count))
            values[0] = None
        else:
            known = categories.get(feature.name, [])
            values = [*known, UNSEEN, None]
            values = [values[i % len(values)] for i in range(count)]
        for row, value in zip(rows, values, strict=True):
            row.append(value)
    return rows


def agrees(
    record: VersionRecord,
    pipeline: Pipeline,
    compiled: CompiledTransform,
    rows: list[list[Any]],
) -> bool:
    """Same matrix and same estimator outputs as scikit-learn, on these rows."""
    frame = _frame(record, rows)
    expected = np.asarray(pipeline.steps[0][1].transform(frame), dtype=float)
    ours = compiled.transform(rows)
    if expected.shape != ours.shape or not np.allclose(
        expected, ours, rtol=0, atol=TOLERANCE, equal_nan=True
    ):
        return False
    estimator = pipeline.steps[-1][1]
    if not np.array_equal(estimator.predict(expected), estimator.predict(ours)):
        return False
    if hasattr(estimator, "predict_proba") and record.has_proba:
        return bool(
            np.allclose(
                estimator.predict_proba(expected),
                estimator.predict_proba(ours),
                rtol=0,
                atol=TOLERANCE,
            )
        )
    return True


def _frame(record: VersionRecord, rows: list[list[Any]]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for index, feature in enumerate(record.features):
        values = [row[index] for row in rows]
        if feature.type == "numeric":
            data[feature.name] = np.array(values, dtype=float)
        else:
            data[feature.name] = pd.Series(
                [np.nan if value is None else value for value in values], dtype=object
            )
    return pd.DataFrame(data)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if np.isfinite(number) else 0.0
