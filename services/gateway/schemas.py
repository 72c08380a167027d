"""Request bodies, path parameters and error answers of the public API.

Successful responses are plain JSON documents; every error is an
``ErrorBody``, declared with the statuses each router can answer. Names and
ids in paths are checked against the same patterns as the bodies that create
them, so a value that could never name a resource (a NUL, a slash, "..") is
a 422 before it reaches a storage key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from shared.jobs import Gates, TuningBudget

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Dataset ids are 32 hex digits and job ids 23; the pattern leaves room.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
Algorithm = Literal["auto", "linear", "random_forest", "hist_gradient_boosting"]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        pattern=MODEL_NAME_PATTERN,
        description="Name of the prediction task, e.g. 'at-risk'. "
        "Letters, digits, _ . -",
    )
    dataset_id: str = Field(
        pattern=ID_PATTERN, description="Id of an uploaded dataset."
    )
    target: str = Field(min_length=1)
    task: Literal["classification", "regression"] | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    id_column: str | None = None
    algorithm: Algorithm = "auto"
    tuning: TuningBudget | None = Field(
        default=None, description="Search hyper-parameters within trials and seconds."
    )
    class_weight: Literal["auto", "balanced", "none"] = Field(
        default="auto",
        description="'auto' weighs classes as 'balanced' when the smallest class holds "
        "less than 20% of the rows.",
    )
    group_split_column: str | None = Field(
        default=None,
        description="Students sharing a value (a school) are never on both sides of "
        "a split or a fold.",
    )
    group_columns: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Columns whose groups get their own metrics (fairness report).",
    )
    use_group_columns_as_features: bool = False
    min_group_size: int = Field(default=30, ge=1, le=100_000)
    capacity: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of students staff can help; precision and recall at it.",
    )
    gates: Gates | None = Field(
        default=None,
        description="Promotion gates; kept on the model for later jobs when given.",
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, Any]] = Field(min_length=1)
    explain: bool = Field(
        default=False,
        description="Add the top reasons (feature contributions) per row.",
    )


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(
        pattern=ID_PATTERN, description="Id of an uploaded dataset, scored row by row."
    )
    version: int | None = Field(
        default=None, ge=1, description="Version to score with; the champion if absent."
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable name of the error, e.g. 'invalid_input'.")
    message: str = Field(
        description="What was wrong, where, what is allowed, what was received."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_MEANINGS = {
    401: "No API key, or one that is not valid for this route.",
    404: "Unknown dataset, job, model or version.",
    409: "A model without a champion yet, or a write that lost a race.",
    413: "A body, a file or a table over its limit.",
    422: "A request that cannot be used; the message names the problem.",
    503: "Redis or S3 does not answer as configured.",
    504: "No serving worker answered in time.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error body for ``statuses``."""
    return {
        status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]}
        for status in statuses
    }


ModelName = Annotated[
    str, Path(pattern=MODEL_NAME_PATTERN, description="Name of the model.")
]
DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="Id of the dataset.")]
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="Id of the job.")]
VersionNumber = Annotated[int, Path(ge=1, description="Number of the version.")]
