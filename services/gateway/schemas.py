"""Request bodies of the public API (responses are plain JSON documents)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Algorithm = Literal["auto", "linear", "random_forest", "hist_gradient_boosting"]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        pattern=MODEL_NAME_PATTERN,
        description="Name of the prediction task, e.g. 'at-risk'. Letters, digits, _ . -",
    )
    dataset_id: str = Field(min_length=1, max_length=128)
    target: str = Field(min_length=1)
    task: Literal["classification", "regression"] | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    id_column: str | None = None
    algorithm: Algorithm = "auto"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, Any]] = Field(min_length=1)
