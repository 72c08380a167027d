"""The platform's own exceptions.

Every message answers four questions: what was wrong, where, what is
allowed, and what was received. Foreign exceptions (botocore, redis, pandas
parsing) are turned into these at the boundary, chained with ``from``. The
gateway maps each class to one HTTP status in one place.

    PlatformError
    ├── InvalidInput          422  a request or an upload that cannot be used
    │   └── UnsupportedOperation 400  valid input the model cannot honour
    ├── NotFound              404  an unknown dataset, job, model or version
    ├── Conflict              409  a write that lost a race (promotion, version)
    ├── PayloadTooLarge       413  a body, a file or a table over a limit
    ├── Unauthorized          401  a missing or wrong API key
    ├── DependencyUnavailable 503  Redis or S3 does not answer as configured
    ├── ArtifactRejected      409  a stored model that fails its checks at load
    └── PredictionTimeout     504  no worker answered in time
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base class: ``code`` is a stable machine-readable name."""

    code = "platform_error"
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PlatformError):
    code = "invalid_input"
    status_code = 422


class UnsupportedOperation(InvalidInput):
    code = "unsupported_operation"
    status_code = 400


class NotFound(PlatformError):
    code = "not_found"
    status_code = 404


class Conflict(PlatformError):
    code = "conflict"
    status_code = 409


class PayloadTooLarge(PlatformError):
    code = "payload_too_large"
    status_code = 413


class Unauthorized(PlatformError):
    code = "unauthorized"
    status_code = 401


class DependencyUnavailable(PlatformError):
    code = "dependency_unavailable"
    status_code = 503


class ArtifactRejected(PlatformError):
    code = "artifact_rejected"
    status_code = 409


class PredictionTimeout(PlatformError):
    code = "prediction_timeout"
    status_code = 504
