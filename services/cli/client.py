"""Every call the command-line client makes to the gateway, and its errors.

    CliError              something the user must hear about; exit code 2
    ├── ApiError          the gateway answered with an error status
    └── GatewayUnreachable no answer at all: refused, timed out, bad URL

httpx errors become these here, chained with ``from``, so that the commands
never see a foreign exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

REQUEST_TIMEOUT_S = 60.0
UPLOAD_TIMEOUT_S = 600.0  # a CSV may be up to MAX_UPLOAD_BYTES (200 MiB)
SHOWN_BODY_CHARS = 200  # of an error body that is not the API's JSON


class CliError(Exception):
    """Base class: ``message`` is what the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """An error answer: its HTTP status, the API's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class GatewayUnreachable(CliError):
    pass


class Gateway:
    """The gateway at ``url``, called with ``api_key`` as bearer token when set."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT_S
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def upload_dataset(self, path: Path, id_column: str | None) -> dict[str, Any]:
        form = {"id_column": id_column} if id_column else {}
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "text/csv")}
            return self._call(
                "POST", "/v1/datasets", files=files, data=form, timeout=UPLOAD_TIMEOUT_S
            )

    def create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/jobs", json=request)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def jobs(self, limit: int) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/jobs", params={"limit": limit})["jobs"])

    def models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/models")["models"])

    def model(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{quote(name, safe='')}")

    def predict(self, model: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"instances": instances}
        return self._call(
            "POST", f"/v1/models/{quote(model, safe='')}/predict", json=body
        )

    def queues(self) -> dict[str, Any]:
        return self._call("GET", "/v1/queues")

    def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, path, **options)
        except httpx.TimeoutException as error:
            raise GatewayUnreachable(
                f"the gateway at {self.url} did not answer {method} {path} in time"
            ) from error
        except (httpx.TransportError, httpx.InvalidURL) as error:
            raise GatewayUnreachable(
                f"cannot reach the gateway at {self.url} — is the stack up? (make up)"
            ) from error
        if answer.is_error:
            raise api_error(answer)
        return dict(answer.json())


def api_error(answer: httpx.Response) -> ApiError:
    """The API's ``{"error": {"code", "message"}}``, or the best that is there."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return ApiError(answer.status_code, str(error.get("code")), error["message"])
    if isinstance(body, dict) and "detail" in body:  # a route the gateway lacks
        return ApiError(answer.status_code, "http_error", str(body["detail"]))
    text = answer.text.strip()[:SHOWN_BODY_CHARS] or answer.reason_phrase
    return ApiError(answer.status_code, "http_error", text)
