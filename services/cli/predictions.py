"""Predictions for a CSV: rows read into instances, sent in batches, answers joined.

The file is read as an upload is (``shared.datasets.parse_csv``): its
encoding, its delimiter among ``, ; TAB |`` and its decimal mark are found
the same way. A missing value is sent as null; the gateway matches columns by
name and ignores the ones the model does not use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import track

from services.cli.client import ApiError, CliError, Gateway
from shared.datasets import parse_csv
from shared.errors import PlatformError

BATCH_ROWS = 500  # instances per request, half the gateway's MAX_PREDICT_INSTANCES
MAX_ROWS = 2_000_000  # as an upload's default MAX_CSV_ROWS
MAX_COLUMNS = 2_000


@dataclass
class Predictions:
    """The answers of every batch, in the file's row order."""

    frame: pd.DataFrame
    versions: set[int] = field(default_factory=set)


def read_instances(path: Path) -> list[dict[str, Any]]:
    """Every row of the CSV at ``path`` as a JSON-ready instance."""
    try:
        table = parse_csv(
            path.read_bytes(),
            max_rows=MAX_ROWS,
            max_columns=MAX_COLUMNS,
            min_columns=1,
        )
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from error
    except PlatformError as error:
        raise CliError(f"cannot read {path} as a CSV file: {error.message}") from error
    frame = table.frame
    if frame.empty:
        raise CliError(f"{path} has a header but no rows to predict")
    records = frame.to_dict(orient="records")
    return [{str(k): json_value(v) for k, v in row.items()} for row in records]


def json_value(value: Any) -> Any:
    """``value``, or None where JSON has no number for it: NaN, infinities, NA."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def predict_all(
    gateway: Gateway, model: str, instances: list[dict[str, Any]], console: Console
) -> Predictions:
    starts = range(0, len(instances), BATCH_ROWS)
    frames, versions = [], set()
    for start in track(starts, "predicting", console=console, transient=True):
        answer = predict_batch(gateway, model, instances, start)
        frames.append(answer_frame(answer))
        versions.add(int(answer["version"]))
    return Predictions(pd.concat(frames, ignore_index=True), versions)


def predict_batch(
    gateway: Gateway, model: str, instances: list[dict[str, Any]], start: int
) -> dict[str, Any]:
    batch = instances[start : start + BATCH_ROWS]
    try:
        return gateway.predict(model, batch)
    except ApiError as error:
        first, last = start + 1, start + len(batch)
        raise ApiError(
            error.status,
            error.code,
            f"rows {first}–{last} of the file (instance 0 is row {first}): "
            f"{error.message}",
        ) from error


def answer_frame(answer: dict[str, Any]) -> pd.DataFrame:
    """One row per instance: its id when returned, prediction, class probabilities."""
    columns: dict[str, list[Any]] = {}
    if answer.get("ids") is not None:
        columns["id"] = answer["ids"]
    columns["prediction"] = answer["predictions"]
    probabilities = answer.get("probabilities") or []
    for label in probabilities[0] if probabilities else []:
        columns[f"probability_{label}"] = [row.get(label) for row in probabilities]
    return pd.DataFrame(columns)
